using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Tests.Runtime;

/// <summary>
/// No kernel takes a remainder by a constant. ILGPU emits C#'s <c>%</c> as PTX <c>rem</c>, and ptxas compiles
/// <c>rem</c> (and <c>div</c>) by an immediate as a general division — an unsigned-to-float convert, a reciprocal on the
/// special-function unit, a float-to-int convert and fix-ups, even by 4 (seen in the H100's SASS) — so the kernels
/// mask power-of-two remainders instead. A <c>%</c> added back in a hot loop cost the wgmma kernel 14%.
/// </summary>
public sealed class PtxConstantRemainderTests : IDisposable
{
    private static readonly Regex ConstantRemainder = new(@"\brem\.[su](32|64)\s+%\w+,\s*%\w+,\s*-?\d+;");

    private static readonly Regex IntegerDivision = new(@"\b(div|rem)\.[su](32|64)\s[^;]*;");

    private static readonly PtxTarget Sm90 = new(CudaArchitecture.SM_90, CudaInstructionSet.ISA_88);

    private readonly PtxCompiler _compiler = new();

    public void Dispose() => _compiler.Dispose();

    public static TheoryData<string> Kernels =>
        ["mma.sync attention", "wgmma attention", "paged decode", "one-launch quantization", "statistics", "tile quantization",
            "packed channel statistics", "packed V quantization"];

    [Theory]
    [MemberData(nameof(Kernels))]
    public void KernelHasNoRemainderByAConstant(string kernel)
    {
        var target = Sm90;
        var ptx = kernel switch
        {
            // The FP16-P·V variant: its 8-chunk V rows had the most remainders (K/V tile prefetch, every key block).
            "mma.sync attention" => Compile(typeof(AttentionKernel), target, [(int)AttentionVariant.QkInt8PvFp16, 128]),
            "wgmma attention" => Compile(typeof(HopperAttentionKernel), target with { ArchSpecific = true }, [128, 2, 1]),
            "paged decode" => Compile(typeof(PagedDecodeKernel), target, [128, (int)TensorElementType.Float16]),
            // The two launches that long heads take (statistics, then the Q/K/V tiles).
            "statistics" => Compile(typeof(KvStatsKernel), target, []),
            "tile quantization" => Compile(typeof(QkvQuantizeKernel), target, []),
            // The packed (varlen) path's quantizers.
            "packed channel statistics" => Compile(typeof(ChannelStatsKernel), target, []),
            "packed V quantization" => Compile(typeof(QuantizeVKernel), target, []),
            _ => Compile(typeof(QkvQuantizeOneLaunchKernel), target,
                [128, (int)TensorElementType.Float16, (int)VFormat.Fp8ForFp32Accum, (int)QuantGranularity.PerThread]),
        };

        var found = ConstantRemainder.Matches(ptx).Select(m => m.Value.Trim()).ToArray();
        Assert.True(found.Length == 0, $"{kernel}: {string.Join(" | ", found)}");
    }

    [Fact]
    public void PackedVQuantizerDividesByNoRunTimeValue()
    {
        // Its staging loop split every element's index by the head dimension (i / dp, i % dp): a general integer
        // division per element. Dp is 64 or 128, so a shift and a mask do; no integer division is left in the kernel.
        var ptx = Compile(typeof(QuantizeVKernel), Sm90, []);
        var found = IntegerDivision.Matches(ptx).Select(m => m.Value.Trim()).ToArray();
        Assert.True(found.Length == 0, string.Join(" | ", found));
    }

    [Fact]
    public void TheCheckSeesARemainderByAConstant()
    {
        // The same check on a kernel that keeps a % by 8: the pattern matches what ILGPU emits for it.
        var ptx = Compile(typeof(RemainderKernel), PtxTarget.Hopper, []);
        Assert.Matches(ConstantRemainder, ptx);
    }

    private string Compile(Type kernel, PtxTarget target, object[] specialized) =>
        _compiler.Compile(kernel.GetMethod("Run", BindingFlags.Public | BindingFlags.Static)!, target, specialized).Ptx;

    public static class RemainderKernel
    {
        public static void Run(ILGPU.ArrayView<int> data)
        {
            int i = ILGPU.Grid.GlobalIndex.X;
            data[i] = data[i] % 8;
        }
    }
}
