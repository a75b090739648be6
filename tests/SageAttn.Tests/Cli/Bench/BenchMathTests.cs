using SageAttn.Cli.Bench;
using SageAttn.Kernels.Reference;
using SageAttn.Quantization;
using SageAttn.Quantization.Reference;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Cli.Bench;

public sealed class BenchMathTests
{
    [Fact]
    public void TopsIsFourBHNSquaredDOverTimeHalvedForCausal()
    {
        // 4 · 16 · 32 · 1024² · 128 = 274 877 906 944 operations in 1 ms = 274.877906944 TOPS.
        Assert.Equal(274.877906944, BenchMath.Tops(16, 32, 1024, 128, false, 1.0), 9);
        Assert.Equal(137.438953472, BenchMath.Tops(16, 32, 1024, 128, true, 1.0), 9);
        // 4 · 1 · 1 · 10² · 2 = 800 operations in 2 ms = 4e5 op/s = 4e-7 TOPS.
        Assert.Equal(4e-7, BenchMath.Tops(1, 1, 10, 2, false, 2.0), 15);
        Assert.Throws<ArgumentOutOfRangeException>(() => BenchMath.Tops(1, 1, 1, 1, false, 0));
    }

    [Fact]
    public void RelativeL1AndCosineMatchHandComputedCases()
    {
        // |1-1| + |2-1| = 1 over |1| + |1| = 2.
        Assert.Equal(0.5, BenchMath.RelativeL1([1, 2], [1, 1]), 12);
        // (1·1 + 2·1) / (√5 · √2) = 3 / √10.
        Assert.Equal(3 / Math.Sqrt(10), BenchMath.Cosine([1, 2], [1, 1]), 12);
        Assert.Equal(0, BenchMath.RelativeL1([3, -4], [3, -4]));
        Assert.Equal(1, BenchMath.Cosine([3, -4], [6, -8]), 12);
        Assert.Equal(-1, BenchMath.Cosine([1, 0], [-2, 0]), 12);
        // Orthogonal: cosine 0; relative L1 (1 + 1) / 1 = 2.
        Assert.Equal(0, BenchMath.Cosine([0, 1], [1, 0]), 12);
        Assert.Equal(2, BenchMath.RelativeL1([0, 1], [1, 0]), 12);
        Assert.Throws<ArgumentException>(() => BenchMath.RelativeL1([1], [1, 2]));
        Assert.Throws<ArgumentException>(() => BenchMath.RelativeL1([1, 1], [0, 0]));
    }

    [Fact]
    public void MedianOfOddAndEvenCounts()
    {
        Assert.Equal(3, BenchMath.Median([5, 1, 3]));
        Assert.Equal(2.5, BenchMath.Median([4, 1, 2, 3]));
        Assert.Throws<ArgumentException>(() => BenchMath.Median(Array.Empty<double>()));
    }

    [Fact]
    public void SampledRowsSpanTheSequence()
    {
        Assert.Equal([0, 3, 6, 9], SampledReference.Rows(10, 4));
        Assert.Equal([0, 1], SampledReference.Rows(2, 16));
        Assert.Equal([4], SampledReference.Rows(5, 1));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SampledReferenceEqualsFullFloat64Attention(bool causal)
    {
        var random = new Random(3);
        int n = 37, d = 24;
        var q = TestData.Randn(random, 1, 1, n, d, TensorElementType.Float16);
        var k = TestData.Randn(random, 1, 1, n, d, TensorElementType.Float16, channelOffset: 4f);
        var v = TestData.Randn(random, 1, 1, n, d, TensorElementType.Float16);
        var (full, _) = ExactAttention.Compute(q, k, v, 0.3, causal, 0);
        int[] rows = SampledReference.Rows(n, 5);
        var sampled = SampledReference.Attention(Rows(q, rows), Rows(k, Enumerable.Range(0, n).ToArray()),
            Rows(v, Enumerable.Range(0, n).ToArray()), d, rows, causal, 0.3);
        for (int r = 0; r < rows.Length; r++)
            for (int c = 0; c < d; c++)
                Assert.Equal(full[rows[r] * d + c], sampled[r * d + c], 12);
    }

    private static float[] Rows(HostTensor t, int[] rows) =>
        rows.SelectMany(n => Enumerable.Range(0, t.HeadDim).Select(c => t[0, 0, n, c])).ToArray();
}
