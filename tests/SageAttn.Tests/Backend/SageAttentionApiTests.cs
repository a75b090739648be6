using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using SageAttn.Quantization;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>
/// sageattn and the SDPA drop-in against torch's own SDPA in float64, one subclass per device.
/// Bars: relL1 ≤ 0.06 and cosine ≥ 0.998 for the FP8 variants, relL1 ≤ 0.02 for FP16 P·V.
/// </summary>
public abstract class SageAttentionApiTests
{
    protected abstract Device Device { get; }

    /// <summary>Skips when this machine lacks the device.</summary>
    protected virtual void RequireDevice()
    {
    }

    public static TheoryData<string, string, int, int, int, int, int, bool, string?> Cases => new()
    {
        // layout, dtype, Hq, Hkv, Nq, Nk, D, causal, variant (null = auto)
        { "HND", "f16", 2, 2, 130, 130, 64, false, null },
        { "NHD", "bf16", 4, 2, 70, 150, 64, true, null },
        { "HND", "f16", 4, 1, 100, 100, 80, true, nameof(AttentionVariant.QkInt8PvFp16) },
        { "NHD", "f16", 2, 1, 65, 65, 128, false, nameof(AttentionVariant.QkInt8PvFp8Fp16Accum) },
        { "HND", "bf16", 2, 2, 150, 40, 32, true, nameof(AttentionVariant.QkInt8PvFp8) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void SageattnMatchesTorchSdpa(string layout, string dtype, int hq, int hkv, int nq, int nk, int d, bool causal, string? variant)
    {
        RequireDevice();
        using var generator = new torch.Generator((ulong)(1234 + nq));
        bool nhd = layout == "NHD";
        var type = dtype == "f16" ? ScalarType.Float16 : ScalarType.BFloat16;
        using var q = TorchReference.Randn(generator, nhd ? [1, nq, hq, d] : [1, hq, nq, d], type, Device);
        using var k = TorchReference.Randn(generator, nhd ? [1, nk, hkv, d] : [1, hkv, nk, d], type, Device, channelOffset: 3);
        using var v = TorchReference.Randn(generator, nhd ? [1, nk, hkv, d] : [1, hkv, nk, d], type, Device);
        var settings = new SageAttentionSettings { Variant = variant is null ? null : Enum.Parse<AttentionVariant>(variant) };

        using var output = SageAttention.sageattn(q, k, v, tensor_layout: layout, is_causal: causal, options: settings);

        Assert.Equal(q.shape, output.shape);
        Assert.Equal(type, output.dtype);
        Assert.Equal(Device.type, output.device_type);
        var (reference, lse) = TorchReference.Attention(q, k, v, nhd, causal, causal ? Math.Max(0, nk - nq) : 0, null);
        using var _ = reference;
        using var __ = lse;
        using var hnd = nhd ? output.permute(0, 2, 1, 3) : output.alias();
        AssertAccurate(hnd, reference, variant == nameof(AttentionVariant.QkInt8PvFp16));
    }

    [Theory]
    [InlineData("HND", false, true)]
    [InlineData("NHD", true, true)]
    [InlineData("HND", true, false)]
    public void LseMatchesFloat64LogSumExp(string layout, bool causal, bool smoothK)
    {
        RequireDevice();
        using var generator = new torch.Generator(77);
        bool nhd = layout == "NHD";
        int hq = 4, hkv = 2, nq = 90, nk = 120, d = 64;
        using var q = TorchReference.Randn(generator, nhd ? [1, nq, hq, d] : [1, hq, nq, d], ScalarType.Float16, Device);
        using var k = TorchReference.Randn(generator, nhd ? [1, nk, hkv, d] : [1, hkv, nk, d], ScalarType.Float16, Device, channelOffset: smoothK ? 4 : 0);
        using var v = TorchReference.Randn(generator, nhd ? [1, nk, hkv, d] : [1, hkv, nk, d], ScalarType.Float16, Device);

        var (output, lse) = SageAttention.sageattn_with_lse(q, k, v, layout, causal, sm_scale: 0.2,
            options: new SageAttentionSettings { SmoothK = smoothK });
        using var o = output;
        using var l = lse;

        Assert.Equal(new long[] { 1, hq, nq }, lse.shape);
        Assert.Equal(ScalarType.Float32, lse.dtype);
        var (reference, referenceLse) = TorchReference.Attention(q, k, v, nhd, causal, causal ? nk - nq : 0, 0.2);
        using var _ = reference;
        using var __ = referenceLse;
        using var lse64 = lse.to(DeviceType.CPU).to(ScalarType.Float64);
        using var maxError = (lse64 - referenceLse).abs().max();
        // Without K smoothing, K outlier channels would dominate the INT8 scale (that is what smoothing is for), so that case uses plain K.
        // The LSE comes from INT8 logits: a few hundredths of a nat (quantization of q·k), far below a wrong mask or missing correction.
        Assert.True(maxError.item<double>() < 0.05, $"max |lse - ref| = {maxError.item<double>()}");
        using var hnd = nhd ? o.permute(0, 2, 1, 3) : o.alias();
        AssertAccurate(hnd, reference, fp16Pv: false);
    }

    [Theory]
    [InlineData(false, false, null)]
    [InlineData(true, false, 0.3)]
    [InlineData(true, true, null)]
    public void ScaledDotProductAttentionIsADropIn(bool causal, bool gqa, double? scale)
    {
        RequireDevice();
        using var generator = new torch.Generator(5);
        int hq = gqa ? 4 : 2, hkv = 2, n = 96, d = 64;
        using var q = TorchReference.Randn(generator, [2, hq, n, d], ScalarType.Float16, Device);
        using var k = TorchReference.Randn(generator, [2, hkv, n, d], ScalarType.Float16, Device);
        using var v = TorchReference.Randn(generator, [2, hkv, n, d], ScalarType.Float16, Device);

        using var output = SageAttention.scaled_dot_product_attention(q, k, v, is_causal: causal, scale: scale, enable_gqa: gqa);

        var (reference, lse) = TorchReference.Attention(q, k, v, nhd: false, causal, 0, scale);
        using var _ = reference;
        using var __ = lse;
        AssertAccurate(output, reference, fp16Pv: false);
        if (!gqa && scale is null)
        {
            // Against torch's SDPA on the caller's own tensors, as a user would swap it in.
            using var q32 = q.to(ScalarType.Float32).to(DeviceType.CPU);
            using var k32 = k.to(ScalarType.Float32).to(DeviceType.CPU);
            using var v32 = v.to(ScalarType.Float32).to(DeviceType.CPU);
            using var torchOut = torch.nn.functional.scaled_dot_product_attention(q32, k32, v32, is_casual: causal);
            AssertAccurate(output, torchOut, fp16Pv: false);
        }
    }

    [Fact]
    public void SmoothVAndPerBlockScalesStayAccurate()
    {
        RequireDevice();
        using var generator = new torch.Generator(9);
        using var q = TorchReference.Randn(generator, [1, 2, 64, 64], ScalarType.BFloat16, Device);
        using var k = TorchReference.Randn(generator, [1, 2, 100, 64], ScalarType.BFloat16, Device, channelOffset: 5);
        using var v = TorchReference.Randn(generator, [1, 2, 100, 64], ScalarType.BFloat16, Device, channelOffset: 2);

        using var output = SageAttention.sageattn(q, k, v, options: new SageAttentionSettings { SmoothV = true, Granularity = QuantGranularity.PerBlock });

        var (reference, lse) = TorchReference.Attention(q, k, v, nhd: false, causal: false, 0, null);
        using var _ = reference;
        using var __ = lse;
        AssertAccurate(output, reference, fp16Pv: false);
    }

    private static void AssertAccurate(Tensor actual, Tensor reference, bool fp16Pv)
    {
        var (relL1, cosine, _) = TorchReference.Compare(actual, reference);
        Assert.True(relL1 <= (fp16Pv ? 0.02 : 0.06), $"relL1 {relL1:F4}");
        Assert.True(cosine >= 0.998, $"cosine {cosine:F5}");
    }
}

/// <summary>CPU tensors: the ILGPU CPU accelerator (runs in CI).</summary>
public sealed class SageAttentionApiCpuTests : SageAttentionApiTests
{
    protected override Device Device => torch.CPU;
}

/// <summary>CUDA tensors through the driver path (the GPU machine; skipped here).</summary>
[Trait("gpu", "true")]
public sealed class SageAttentionApiCudaTests : SageAttentionApiTests
{
    protected override Device Device => torch.CUDA;

    protected override void RequireDevice()
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
    }
}
