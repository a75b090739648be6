using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using SageAttn.Quantization.Reference;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Quantization;

/// <summary>The quantization kernels on the CPU accelerator equal the plain C# reference exactly.</summary>
public sealed class QuantizerKernelTests(CpuAcceleratorFixture fixture) : IClassFixture<CpuAcceleratorFixture>
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
            Assert.Equal(kStats, quantized.KStats.GetAsArray1D());
            var kMeans = QuantizationReference.ChannelMeans(k, kStats, dp);

            var (qValues, qScales) = QuantizationReference.QuantizeInt8(q, false, granularity, null, smScale * SageConstants.Log2E);
            Assert.Equal(qValues, quantized.Q.GetAsArray1D());
            Assert.Equal(qScales, quantized.QScale.GetAsArray1D());

            var (kValues, kScales) = QuantizationReference.QuantizeInt8(k, true, granularity, kMeans, 1f);
            Assert.Equal(kValues, quantized.K.GetAsArray1D());
            Assert.Equal(kScales, quantized.KScale.GetAsArray1D());

            var (vWords, vScales, vMeans) = QuantizationReference.QuantizeV(v, options.VFormat, options.SmoothV);
            Assert.Equal(vScales, quantized.VScale.GetAsArray1D());
            Assert.Equal(vMeans, quantized.VMean.GetAsArray1D());
            Assert.Equal(vWords, quantized.V.GetAsArray1D());

            // Scales are finite and positive, INT8 values use the range (the largest element of a group hits ±127).
            Assert.All(qScales, s => Assert.True(s > 0 && float.IsFinite(s)));
            Assert.Contains(qValues, x => Math.Abs((int)x) == 127);
        }
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
