using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Cli;

/// <summary>
/// Writes the attention and fused quantization kernels' PTX for sm_90 so ptxas -v can report registers and spills;
/// <c>--filter TEXT</c> compiles only the files whose name contains TEXT (all of them take minutes).
/// </summary>
internal static class PtxCommand
{
    public static int Run(string[] args)
    {
        string dir = CliArgs.Value(args, "--out") ?? throw new ArgumentException("--out DIR is required.", "--out");
        string filter = CliArgs.Value(args, "--filter") ?? "";
        Directory.CreateDirectory(dir);
        using var compiler = new PtxCompiler();
        var target = new PtxTarget(CudaArchitecture.SM_90, CudaInstructionSet.ISA_88);
        bool Wanted(string file) => file.Contains(filter, StringComparison.Ordinal);
        foreach (var (prefix, kernel) in new[] { ("attention", typeof(AttentionKernel)), ("varlen_attention", typeof(VarlenAttentionKernel)) })
        foreach (var variant in Enum.GetValues<AttentionVariant>().Where(v => !v.IsHopper()))
        foreach (int dp in new[] { 64, 128 })
        {
            if (!Wanted($"{prefix}_{variant}_d{dp}.ptx"))
                continue;
            var ptx = compiler.Compile(kernel.GetMethod("Run")!, target, [(int)variant, dp]);
            string path = Path.Combine(dir, $"{prefix}_{variant}_d{dp}.ptx");
            File.WriteAllText(path, ptx.Ptx);
            Console.WriteLine($"{path}: entry {ptx.EntryName}, {ptx.Ptx.Length} chars");
        }
        foreach (var (prefix, entry) in new[] { ("attention", nameof(HopperAttentionKernel.Run)), ("varlen_attention", nameof(HopperAttentionKernel.RunPacked)) })
        foreach (var variant in new[] { AttentionVariant.HopperQkInt8PvFp8, AttentionVariant.HopperQkInt8PvFp16 })
        foreach (int dp in new[] { 64, 128 })
        foreach (int groups in new[] { 1, 2, 3, HopperAttentionKernel.MaxWarpGroups })
        {
            if (!Wanted($"{prefix}_{variant}_d{dp}_wg{groups}.ptx"))
                continue;
            var ptx = compiler.Compile(typeof(HopperAttentionKernel).GetMethod(entry)!, target with { ArchSpecific = true },
                [dp, groups, HopperAttentionKernel.ValueBytes(variant)],
                new ILGPU.Runtime.KernelSpecialization(groups * HopperAttentionKernel.Threads, HopperAttentionKernel.BlocksPerSm(groups)));
            string path = Path.Combine(dir, $"{prefix}_{variant}_d{dp}_wg{groups}.ptx");
            File.WriteAllText(path, ptx.Ptx);
            Console.WriteLine($"{path}: entry {ptx.EntryName}, {ptx.Ptx.Length} chars (sm_90a)");
        }
        // The warp-specialized FP8 form: a producer and two consumer warpgroups, one block per SM.
        foreach (int dp in new[] { 64, 128 })
        {
            if (!Wanted($"attention_HopperQkInt8PvFp8_d{dp}_ws.ptx"))
                continue;
            var ptx = compiler.Compile(typeof(HopperAttentionKernel).GetMethod(nameof(HopperAttentionKernel.RunWarpSpecialized))!,
                target with { ArchSpecific = true }, [dp], new ILGPU.Runtime.KernelSpecialization(HopperAttentionKernel.SpecializedThreads, 1));
            string path = Path.Combine(dir, $"attention_HopperQkInt8PvFp8_d{dp}_ws.ptx");
            File.WriteAllText(path, ptx.Ptx);
            Console.WriteLine($"{path}: entry {ptx.EntryName}, {ptx.Ptx.Length} chars (sm_90a)");
        }
        foreach (var (name, kernel, entry) in new[]
        {
            ("quantize_kv_stats", typeof(KvStatsKernel), "Run"), ("quantize_qkv", typeof(QkvQuantizeKernel), "Run"),
            ("varlen_quantize_kv_stats", typeof(KvStatsKernel), "RunPacked"), ("varlen_quantize_qkv", typeof(QkvQuantizeKernel), "RunPacked"),
        })
        {
            if (!Wanted($"{name}.ptx"))
                continue;
            var ptx = compiler.Compile(kernel.GetMethod(entry)!, target, []);
            string path = Path.Combine(dir, $"{name}.ptx");
            File.WriteAllText(path, ptx.Ptx);
            Console.WriteLine($"{path}: entry {ptx.EntryName}, {ptx.Ptx.Length} chars");
        }
        // The one-launch quantizer as the default options specialize it (per-thread scales, FP8 V), fp16 inputs.
        foreach (int dp in new[] { 64, 128 })
        {
            if (!Wanted($"quantize_one_launch_d{dp}.ptx"))
                continue;
            var ptx = compiler.Compile(typeof(QkvQuantizeOneLaunchKernel).GetMethod("Run")!, target,
                [dp, (int)TensorElementType.Float16, (int)VFormat.Fp8ForFp32Accum, (int)QuantGranularity.PerThread]);
            string path = Path.Combine(dir, $"quantize_one_launch_d{dp}.ptx");
            File.WriteAllText(path, ptx.Ptx);
            Console.WriteLine($"{path}: entry {ptx.EntryName}, {ptx.Ptx.Length} chars");
        }
        return 0;
    }
}
