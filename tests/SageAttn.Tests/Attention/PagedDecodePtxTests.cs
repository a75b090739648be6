using System.Text.RegularExpressions;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
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
    /// The driver path's launch parameters: every view field is named (a renamed field would throw), and each parameter's
    /// byte size equals ILGPU's <c>.param</c> declaration.
    /// </summary>
    [Fact]
    public void DriverArgumentsMatchThePtxParameters()
    {
        var shape = PagedDecodeShape.Of(2, 8, 1, 128, 10, 64, 4, 200);
        var split = PagedDecodeSplit.Choose(shape, 132, forcedSplits: 2);
        DeviceView View(long address, long length) => new(new IntPtr(address), length);
        var buffers = new PagedDecodeDeviceBuffers(View(0x1000, 2048), 1024, 128, View(0x100000, shape.CacheElements),
            View(0x200000, shape.CacheElements), View(0x3000, 8), View(0x4000, 2), View(0x5000, 2048), 1024, 128, default);
        using var decodeArgs = CudaPagedDecode.AddDecodeArguments(new KernelArgs(), buffers, shape, split, TensorElementType.BFloat16, 0.1f,
            View(0x6000, 4096), View(0x7000, 32));
        var decode = _compiler.Compile(typeof(PagedDecodeKernel).GetMethod(nameof(PagedDecodeKernel.Run))!, PtxTarget.Hopper, [128, 1]);
        var decodeSizes = ParamSizes(decode.Ptx, decode.EntryName);
        Assert.Equal(decodeSizes.Length, decodeArgs.Count);
        for (int i = 0; i < decodeSizes.Length; i++)
            Assert.Equal(decodeSizes[i], decodeArgs.GetBytes(i).Length);

        var layout = AttentionStateLayout.Contiguous(2, 2, 8, 1, 128);
        using var mergeArgs = CudaPagedDecode.AddMergeArguments(new KernelArgs(), layout, View(0x6000, 4096), AttentionStateType.Float32,
            View(0x7000, 32), View(0x5000, 2048), AttentionStateType.BFloat16, default);
        var merge = _compiler.Compile(typeof(AttentionStateMergeKernel).GetMethod(nameof(AttentionStateMergeKernel.Run))!, PtxTarget.Hopper);
        var mergeSizes = ParamSizes(merge.Ptx, merge.EntryName);
        Assert.Equal(mergeSizes.Length, mergeArgs.Count);
        Assert.Equal(mergeSizes[0], mergeArgs.GetBytes(0).Length);
    }

    /// <summary>Byte size of each <c>.param</c> of an entry.</summary>
    private static int[] ParamSizes(string ptx, string entry)
    {
        int start = ptx.IndexOf(".entry " + entry + "(", StringComparison.Ordinal);
        Assert.True(start >= 0, "entry not found");
        int end = ptx.IndexOf(')', start);
        return ptx[start..end].Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(".param", StringComparison.Ordinal))
            .Select(l =>
            {
                var array = Regex.Match(l, @"^\.param \.align \d+ \.b8 \S+\[(\d+)\]");
                if (array.Success)
                    return int.Parse(array.Groups[1].Value);
                var scalar = Regex.Match(l, @"^\.param \.[bfsu](\d+) ");
                Assert.True(scalar.Success, $"unparsed parameter line: {l}");
                return int.Parse(scalar.Groups[1].Value) / 8;
            }).ToArray();
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
