using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using Xunit;

namespace SageAttn.Tests.Runtime;

/// <summary>
/// The backend carves every scratch buffer of a call out of one allocation: each buffer must start aligned, hold what the
/// layout asks, stay inside the block and overlap no other (a kernel writing one must never touch another's bytes).
/// </summary>
public sealed class QuantizedScratchCarveTests
{
    public static TheoryData<int, int, int, int, int, int, bool> Shapes => new()
    {
        // batch, headsQ, headsKv, nq, nk, headDim, FP16 values
        { 1, 1, 1, 1, 1, 64, false },
        { 2, 8, 2, 77, 300, 100, false },
        { 3, 4, 4, 4096, 4096, 128, true },
        { 1, 32, 8, 5000, 20000, 128, false },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void BuffersAreAlignedDisjointAndLargeEnough(int batch, int headsQ, int headsKv, int nq, int nk, int headDim, bool fp16Values)
    {
        var options = new SageAttentionOptions { Variant = fp16Values ? AttentionVariant.QkInt8PvFp16 : AttentionVariant.QkInt8PvFp8 };
        var layout = QuantizedLayout.For(new AttentionShape(batch, headsQ, headsKv, nq, nk, headDim), options);
        long bytes = QuantizedScratch.CarvedBytes(layout);
        var block = new IntPtr(1L << 40);
        var scratch = QuantizedScratch.Carve(layout, block, bytes);
        scratch.Check(layout);

        var buffers = new[]
        {
            (scratch.Q, 1), (scratch.QScale, 4), (scratch.K, 1), (scratch.KScale, 4), (scratch.V, 4), (scratch.VScale, 4),
            (scratch.VMean, 4), (scratch.KStats, 4), (scratch.VStats, 4), (scratch.Coordination, 4),
        };
        var spans = buffers.Select(b => (Start: (long)b.Item1.Pointer - block, End: (long)b.Item1.Pointer - block + b.Item1.Length * b.Item2))
            .ToArray();
        Assert.Equal(layout.ScratchBytes.Sum(b => b.Bytes), spans.Sum(s => s.End - s.Start));
        foreach (var (start, end) in spans)
        {
            Assert.Equal(0, start % QuantizedScratch.CarveAlignment);
            Assert.InRange(start, 0, bytes);
            Assert.InRange(end, start, bytes);
        }
        var ordered = spans.Where(s => s.End > s.Start).OrderBy(s => s.Start).ToArray();
        for (int i = 1; i < ordered.Length; i++)
            Assert.True(ordered[i].Start >= ordered[i - 1].End, $"buffer at {ordered[i].Start} overlaps the one ending at {ordered[i - 1].End}");
    }

    [Fact]
    public void ASmallOrMisalignedBlockIsRejected()
    {
        var layout = QuantizedLayout.For(new AttentionShape(1, 2, 2, 130, 130, 64), new SageAttentionOptions());
        long bytes = QuantizedScratch.CarvedBytes(layout);
        var tooSmall = Assert.Throws<ArgumentException>(() => QuantizedScratch.Carve(layout, (IntPtr)4096, bytes - 1));
        Assert.Equal("blockBytes", tooSmall.ParamName);
        var misaligned = Assert.Throws<ArgumentException>(() => QuantizedScratch.Carve(layout, (IntPtr)(4096 + 16), bytes));
        Assert.Equal("block", misaligned.ParamName);
        Assert.Equal("block", Assert.Throws<ArgumentException>(() => QuantizedScratch.Carve(layout, IntPtr.Zero, bytes)).ParamName);
    }
}
