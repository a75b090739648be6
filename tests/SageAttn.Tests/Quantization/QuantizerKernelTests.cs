using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using SageAttn.Quantization.Reference;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Quantization;

/// <summary>
/// The quantization kernels against the plain C# reference: exactly on the CPU accelerator; on CUDA within
/// what contracted multiply-adds can change (an INT8 value off by one at a rounding boundary, scales to 1e-5).
/// </summary>
public abstract class QuantizerKernelTests(AcceleratorFixture fixture, bool exact)
{
    public static TheoryData<int, int, int, int, int, QuantGranularity, bool, int> Cases => new()
    {
        // batch, headsQ, headsKv, tokens, headDim, granularity, nhd, variant
        { 1, 2, 1, 130, 64, QuantGranularity.PerThread, false, 0 },
        { 2, 2, 2, 77, 128, QuantGranularity.PerWarp, true, 1 },
        { 1, 3, 1, 300, 96, QuantGranularity.PerBlock, false, 2 },
        { 1, 1, 1, 1, 40, QuantGranularity.PerThread, true, 0 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void KernelsEqualReference(int batch, int headsQ, int headsKv, int tokens, int headDim,
        QuantGranularity granularity, bool nhd, int variant)
    {
        var runner = fixture.Require();
        var random = new Random(tokens * 31 + headDim);
        var type = variant == 1 ? TensorElementType.BFloat16 : TensorElementType.Float16;
        var q = TestData.Randn(random, batch, headsQ, tokens + 5, headDim, type, nhd);
        var k = TestData.Randn(random, batch, headsKv, tokens, headDim, type, nhd, channelOffset: 8f);
        var v = TestData.Randn(random, batch, headsKv, tokens, headDim, type, nhd, scale: 3f);
        var options = new SageAttentionOptions { Variant = (AttentionVariant)variant, Granularity = granularity, SmoothV = variant != 1 };
        float smScale = 1f / MathF.Sqrt(headDim);

        // NHD cases read element by element, HND cases with vector loads: both paths must equal the reference.
        var (qb, qv) = fixture.Upload(q, aligned8: !nhd);
        var (kb, kv) = fixture.Upload(k, aligned8: !nhd);
        var (vb, vv) = fixture.Upload(v);
        using (qb) using (kb) using (vb)
        using (var quantized = runner.Quantize(qv, kv, vv, type, smScale, options))
        {
            fixture.Accelerator!.Synchronize();
            int dp = SageConstants.PaddedHeadDim(headDim);
            var kStats = QuantizationReference.ChannelStats(k, dp);
            AssertClose(kStats, quantized.KStats.GetAsArray1D(), 1e-5);
            var kMeans = QuantizationReference.ChannelMeans(k, kStats, dp);

            var (qValues, qScales) = QuantizationReference.QuantizeInt8(q, false, granularity, null, smScale * SageConstants.Log2E);
            AssertInt8(qValues, quantized.Q.GetAsArray1D());
            AssertClose(qScales, quantized.QScale.GetAsArray1D(), 1e-5);

            var (kValues, kScales) = QuantizationReference.QuantizeInt8(k, true, granularity, kMeans, 1f);
            AssertInt8(kValues, quantized.K.GetAsArray1D());
            AssertClose(kScales, quantized.KScale.GetAsArray1D(), 1e-5);

            var (vWords, vScales, vMeans) = QuantizationReference.QuantizeV(v, options.VFormat, options.SmoothV);
            AssertClose(vScales, quantized.VScale.GetAsArray1D(), 1e-5);
            AssertClose(vMeans, quantized.VMean.GetAsArray1D(), 1e-5);
            AssertWords(vWords, quantized.V.GetAsArray1D());

            // Scales are finite and positive, INT8 values use the range (the largest element of a group hits ±127).
            Assert.All(qScales, s => Assert.True(s > 0 && float.IsFinite(s)));
            Assert.Contains(qValues, x => Math.Abs((int)x) == 127);
        }
    }

    private void AssertClose(float[] expected, float[] actual, double relative)
    {
        if (exact) { Assert.Equal(expected, actual); return; }
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= relative * Math.Max(1e-3, Math.Abs(expected[i])), $"[{i}] {actual[i]} vs {expected[i]}");
    }

    private void AssertInt8(sbyte[] expected, sbyte[] actual)
    {
        if (exact) { Assert.Equal(expected, actual); return; }
        Assert.Equal(expected.Length, actual.Length);
        int differing = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1, $"[{i}] {actual[i]} vs {expected[i]}");
            if (expected[i] != actual[i]) differing++;
        }
        Assert.True(differing <= expected.Length / 100, $"{differing} of {expected.Length} INT8 values differ");
    }

    /// <summary>Packed e4m3 or fp16 words: on CUDA each element may move by one code (rounding boundary).</summary>
    private void AssertWords(uint[] expected, uint[] actual)
    {
        if (exact) { Assert.Equal(expected, actual); return; }
        Assert.Equal(expected.Length, actual.Length);
        int differing = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == actual[i]) continue;
            differing++;
            for (int shift = 0; shift < 32; shift += 8)
                Assert.True(Math.Abs((int)((expected[i] >> shift) & 0xFF) - (int)((actual[i] >> shift) & 0xFF)) <= 1, $"word {i}: {actual[i]:X8} vs {expected[i]:X8}");
        }
        Assert.True(differing <= expected.Length / 100, $"{differing} of {expected.Length} V words differ");
    }

    [Fact]
    public void AllZeroInputsGiveFiniteScalesAndZeroValues()
    {
        var runner = fixture.Require();
        var zeros = new HostTensor(new ushort[1 * 1 * 70 * 64], 1, 1, 70, 64, 70 * 64, 70 * 64, 64, TensorElementType.Float16);
        var (b, view) = fixture.Upload(zeros);
        using (b)
        using (var quantized = runner.Quantize(view, view, view, TensorElementType.Float16, 0.125f, new SageAttentionOptions { SmoothV = true }))
        {
            fixture.Accelerator!.Synchronize();
            Assert.All(quantized.QScale.GetAsArray1D(), s => Assert.True(s > 0 && float.IsFinite(s)));
            Assert.All(quantized.KScale.GetAsArray1D(), s => Assert.True(s > 0 && float.IsFinite(s)));
            Assert.All(quantized.VScale.GetAsArray1D(), s => Assert.True(s > 0 && float.IsFinite(s)));
            Assert.All(quantized.Q.GetAsArray1D(), x => Assert.Equal(0, x));
            Assert.All(quantized.V.GetAsArray1D(), x => Assert.Equal(0u, x));
        }
    }
}

/// <summary>Exact agreement on the CPU accelerator (CI).</summary>
public sealed class CpuQuantizerKernelTests(CpuAcceleratorFixture fixture) : QuantizerKernelTests(fixture, exact: true), IClassFixture<CpuAcceleratorFixture>;

/// <summary>The same kernels through ILGPU's CUDA accelerator; skipped where no GPU exists.</summary>
[Trait("gpu", "true")]
[Collection(IlgpuCudaCollection.Name)]
public sealed class CudaQuantizerKernelTests(CudaAcceleratorFixture fixture) : QuantizerKernelTests(fixture, exact: false), IClassFixture<CudaAcceleratorFixture>;
