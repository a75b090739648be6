using System.Text.RegularExpressions;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;

namespace SageAttn.Tests.Attention;

/// <summary>
/// The decode kernels' PTX, generated offline (no GPU): the tensor-core instruction of each dtype is there, K and V
/// rows arrive with 16-byte loads, and no fragment spilled to local memory.
/// </summary>
public sealed class PagedDecodePtxTests : IDisposable
{
    private readonly PtxCompiler _compiler = new();

    public void Dispose() => _compiler.Dispose();

    [Theory]
    [InlineData(128, TensorElementType.Float16, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32")]
    [InlineData(64, TensorElementType.BFloat16, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")]
    public void DecodeKernelUsesTensorCoresAndVectorLoads(int headDim, TensorElementType type, string mma)
    {
        var kernel = typeof(PagedDecodeKernel).GetMethod(nameof(PagedDecodeKernel.Run))!;
        var ptx = _compiler.Compile(kernel, PtxTarget.Hopper, [headDim, (int)type]).Ptx;

        // Per 16-key tile: D/32 chunks × 4 mma for Q·Kᵀ, D/8 for P·V.
        int mmaPerTile = headDim / 32 * 4 + headDim / 8;
        Assert.Equal(mmaPerTile, Regex.Matches(ptx, Regex.Escape(mma)).Count);
        // One 16-byte load per 32 channels of K (keys g, g + 8) and D/16 per lane for V.
        Assert.Equal(headDim / 32 * 2 + headDim / 16, Regex.Matches(ptx, @"ld\.global(\.nc)?\.v4\.(u|b)32").Count);
        AssertNoArraysInLocalMemory(ptx);
    }

    [Fact]
    public void MergeKernelCompiles()
    {
        var kernel = typeof(AttentionStateMergeKernel).GetMethod(nameof(AttentionStateMergeKernel.Run))!;
        var ptx = _compiler.Compile(kernel, PtxTarget.Hopper).Ptx;
        Assert.Contains("ex2.approx.ftz.f32", ptx);
        AssertNoArraysInLocalMemory(ptx);
    }

    /// <summary>
    /// ILGPU gives each inline-asm output a 4-byte local slot that ptxas promotes to a register; anything larger would be
    /// a fragment array spilled to local memory.
    /// </summary>
    private static void AssertNoArraysInLocalMemory(string ptx)
    {
        foreach (Match m in Regex.Matches(ptx, @"__local_depot\d+\[(\d+)\]"))
            Assert.True(int.Parse(m.Groups[1].Value) <= 4, $"local array of {m.Groups[1].Value} bytes: {m.Value}");
    }
}
