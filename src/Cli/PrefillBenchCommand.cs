using System.Diagnostics;
using System.Globalization;
using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// Packed prefill through <c>sageattn_varlen</c> on CUDA tensors (the engine's prefill path): time per call and TOPS of
/// each variant on one batch of sequences, and each variant's distance from the accurate mma.sync variant on the same
/// inputs (a sanity check of the packed kernels, not an accuracy figure).
/// </summary>
/// <remarks>
/// Sequence s has L_s new queries and P + L_s keys (a cached prefix of P), bottom-right causal, so its work is
/// 4 · Hq · D · (L_s · P + L_s (L_s + 1) / 2) operations. Each measurement enqueues <c>--reps</c> calls between two
/// synchronizes and reports the mean (launch overhead and the quantization included, as an engine sees them). A variant
/// the device cannot run (the wgmma ones off sm_90) is reported as skipped.
/// </remarks>
public static class PrefillBenchCommand
{
    private static readonly AttentionVariant[] DefaultVariants =
    [
        AttentionVariant.QkInt8PvFp16, AttentionVariant.QkInt8PvFp8, AttentionVariant.HopperQkInt8PvFp8, AttentionVariant.HopperQkInt8PvFp16,
    ];

    /// <returns>0 after measuring, 1 when libtorch has no CUDA (nothing is measured).</returns>
    /// <exception cref="ArgumentException">A bad option (ParamName names it).</exception>
    public static int Run(string[] args)
    {
        var lengths = CliArgs.Ints(args, "--lengths", [512, 1024, 2048, 4096]);
        int prefix = CliArgs.Ints(args, "--prefix", [0])[0];
        int headsQ = CliArgs.Ints(args, "--heads", [32])[0];
        int headsKv = CliArgs.Ints(args, "--kv-heads", [8])[0];
        int headDim = CliArgs.Ints(args, "--dim", [128])[0];
        int reps = CliArgs.Ints(args, "--reps", [20])[0];
        var variants = CliArgs.Value(args, "--variants") is string names
            ? names.Split(',').Select(n => CliArgs.ParseEnum<AttentionVariant>(n, "--variants")).ToArray()
            : DefaultVariants;
        string? outDir = CliArgs.Value(args, "--out");
        if (prefix < 0)
            throw new ArgumentException($"--prefix must be ≥ 0, got {prefix}.", "--prefix");

        var source = LibTorchLoader.EnsureLoaded();
        if (!cuda.is_available())
        {
            Console.Error.WriteLine($"sageattn bench-prefill: libtorch has no CUDA ({source.Description}); the benchmark measures the GPU path only.");
            return 1;
        }
        using var scope = NewDisposeScope();
        manual_seed(7);
        int tq = lengths.Sum(), tk = tq + prefix * lengths.Length;
        var q = randn([tq, headsQ, headDim], dtype: float16, device: CUDA);
        var k = randn([tk, headsKv, headDim], dtype: float16, device: CUDA);
        var v = randn([tk, headsKv, headDim], dtype: float16, device: CUDA);
        var cuQ = tensor(Offsets(lengths, 0), ScalarType.Int32, CUDA);
        var cuK = tensor(Offsets(lengths, prefix), ScalarType.Int32, CUDA);
        int maxQ = lengths.Max(), maxK = maxQ + prefix;
        double ops = lengths.Sum(l => 4.0 * headsQ * headDim * ((double)l * prefix + l * (l + 1.0) / 2));

        Console.WriteLine($"packed prefill fp16: lengths {string.Join(",", lengths)}, prefix {prefix}, Hq={headsQ}, Hkv={headsKv}, D={headDim}, " +
            $"causal bottom-right; mean of {reps} calls");
        Console.WriteLine($"{"variant",-24} {"ms/call",9} {"TOPS",8} {"relL1 vs QkInt8PvFp16",22}");
        var rows = new List<string> { "variant,ms_per_call,tops,rel_l1_vs_qkint8pvfp16" };
        Tensor? accurate = null;
        foreach (var variant in variants)
        {
            var settings = new SageAttentionSettings { Variant = variant };
            Tensor Call() => SageAttention.sageattn_varlen(q, k, v, cuQ, cuK, maxQ, maxK, is_causal: true, options: settings);
            Tensor output;
            try
            {
                output = Call();
            }
            catch (NotSupportedException e)
            {
                Console.WriteLine($"{variant,-24} skipped: {e.Message}");
                continue;
            }
            for (int i = 0; i < 2; i++)
                Call().Dispose();
            cuda.synchronize();
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++)
                Call().Dispose();
            cuda.synchronize();
            double ms = watch.Elapsed.TotalMilliseconds / reps;
            double tops = ops / (ms * 1e-3) / 1e12;
            if (variant == AttentionVariant.QkInt8PvFp16)
                accurate ??= output.to(float32);
            double relL1 = double.NaN;
            if (accurate is not null)
            {
                using var actual = output.to(float32);
                using var distance = (actual - accurate).abs().sum() / accurate.abs().sum();
                relL1 = distance.item<float>();
            }
            output.Dispose();
            Console.WriteLine($"{variant,-24} {ms,9:F3} {tops,8:F1} {relL1,22:F4}");
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"{variant},{ms:F4},{tops:F1},{relL1:F5}"));
        }
        CsvOutput.Write(outDir, "bench_prefill.csv", rows);
        return 0;
    }

    /// <summary>cu_seqlens of sequences of <paramref name="lengths"/> tokens plus <paramref name="prefix"/> each.</summary>
    private static int[] Offsets(int[] lengths, int prefix)
    {
        var cu = new int[lengths.Length + 1];
        for (int i = 0; i < lengths.Length; i++)
            cu[i + 1] = cu[i] + lengths[i] + prefix;
        return cu;
    }
}
