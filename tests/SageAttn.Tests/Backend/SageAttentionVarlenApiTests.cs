using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>
/// sageattn_varlen against torch's SDPA in float64 run on each sequence alone, and against sageattn on each
/// sequence alone; one subclass per device.
/// </summary>
public abstract class SageAttentionVarlenApiTests
{
    protected abstract Device Device { get; }

    /// <summary>Skips when this machine lacks the device.</summary>
    protected virtual void RequireDevice()
    {
    }

    /// <summary>Runs a packed batch through the API and checks output, LSE and per-sequence agreement with the dense API.</summary>
    protected void RunBatch(int[] lengthsQ, int[] lengthsK, int hq, int hkv, int d, ScalarType type, bool causal, AttentionVariant? variant,
        bool checkDense = true)
    {
        RequireDevice();
        VarlenApiBatch.Run(Device, lengthsQ, lengthsK, hq, hkv, d, type, causal, variant, checkDense);
    }

    [Fact]
    public void CausalPrefixBatchMatchesReferenceAndDense() =>
        RunBatch([1, 40, 9], [20, 70, 9], hq: 4, hkv: 2, d: 64, ScalarType.Float16, causal: true, AttentionVariant.QkInt8PvFp8);

    [Fact]
    public void NonCausalGqa7Bf16MatchesReferenceAndDense() =>
        RunBatch([5, 30], [50, 30], hq: 7, hkv: 1, d: 128, ScalarType.BFloat16, causal: false, AttentionVariant.QkInt8PvFp16);

    /// <summary>An engine's packed qkv [T, (Hq + 2 Hkv)·D] sliced into strided q, k, v views is read in place, same result as contiguous copies.</summary>
    [Fact]
    public void StridedViewsOfPackedQkvAreReadInPlace()
    {
        RequireDevice();
        using var generator = new torch.Generator(21);
        const int hq = 2, hkv = 1, d = 64;
        int[] lengths = [3, 20];
        int t = lengths.Sum();
        using var qkv = TorchReference.Randn(generator, [t, (hq + 2 * hkv) * d], ScalarType.Float16, Device);
        using var q = qkv.narrow(1, 0, hq * d).view(t, hq, d);
        using var k = qkv.narrow(1, hq * d, hkv * d).view(t, hkv, d);
        using var v = qkv.narrow(1, (hq + hkv) * d, hkv * d).view(t, hkv, d);
        using var cu = torch.tensor(TestData.Offsets(lengths), ScalarType.Int32, Device);
        Assert.False(q.is_contiguous());

        using var strided = SageAttention.sageattn_varlen(q, k, v, cu, cu, 20, 20, is_causal: true);
        using Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
        using var copied = SageAttention.sageattn_varlen(qc, kc, vc, cu, cu, 20, 20, is_causal: true);

        using var equal = strided.eq(copied).all();
        Assert.True(equal.item<bool>(), "strided views and contiguous copies gave different outputs");
    }

    [Fact]
    public void EmptyQueryBatchReturnsEmptyOutput()
    {
        RequireDevice();
        using var q = torch.empty([0, 2, 64], ScalarType.Float16, Device);
        using var k = torch.zeros([3, 1, 64], ScalarType.Float16, Device);
        using var cuQ = torch.tensor(new[] { 0, 0 }, ScalarType.Int32, Device);
        using var cuK = torch.tensor(new[] { 0, 3 }, ScalarType.Int32, Device);

        var (output, lse) = SageAttention.sageattn_varlen_with_lse(q, k, k, cuQ, cuK, 1, 3);

        Assert.Equal(new long[] { 0, 2, 64 }, output.shape);
        Assert.Equal(new long[] { 2, 0 }, lse.shape);
        output.Dispose();
        lse.Dispose();
    }
}

/// <summary>CPU tensors: the ILGPU CPU accelerator (runs in CI).</summary>
public sealed class SageAttentionVarlenApiCpuTests : SageAttentionVarlenApiTests
{
    protected override Device Device => torch.CPU;

    [Fact]
    public void WgmmaVariantRunsItsPackedKernel()
    {
        // Once a wgmma variant reached the mma.sync varlen kernel, which has no such variant; now it runs the wgmma
        // kernel's packed form (its emulation here): each sequence equals the dense wgmma call on it alone and the batch
        // meets the float64 bars.
        VarlenApiBatch.Run(torch.CPU, [5, 70], [40, 100], hq: 2, hkv: 1, d: 64, ScalarType.Float16, causal: true, AttentionVariant.HopperQkInt8PvFp8);
    }
}

/// <summary>CUDA tensors through the driver path, cu_seqlens on the device (the GPU machine; skipped here).</summary>
[Trait("gpu", "true")]
public sealed class SageAttentionVarlenApiCudaTests : SageAttentionVarlenApiTests
{
    protected override Device Device => torch.CUDA;

    protected override void RequireDevice()
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
    }

    /// <summary>A prefill-sized batch (lengths 1000..3000, cached prefixes, hd 128, GQA 4) in every variant the device runs.</summary>
    [Theory]
    [InlineData(null)]
    [InlineData(AttentionVariant.QkInt8PvFp8)]
    [InlineData(AttentionVariant.QkInt8PvFp8Fp16Accum)]
    public void LargePrefillBatchMatchesReference(AttentionVariant? variant) =>
        RunBatch([1000, 3000, 1500, 2222], [1000, 3300, 2500, 2222], hq: 16, hkv: 4, d: 128, ScalarType.Float16, causal: true, variant);

    /// <summary>Zero copy: the output is a fresh CUDA tensor a torch op reads right away (same stream, no synchronize).</summary>
    [Fact]
    public void OutputIsReadByTorchWithoutSynchronize()
    {
        RequireDevice();
        using var generator = new torch.Generator(8);
        using var q = TorchReference.Randn(generator, [300, 4, 128], ScalarType.Float16, Device);
        using var k = TorchReference.Randn(generator, [500, 2, 128], ScalarType.Float16, Device);
        using var cuQ = torch.tensor(new[] { 0, 100, 300 }, ScalarType.Int32, Device);
        using var cuK = torch.tensor(new[] { 0, 200, 500 }, ScalarType.Int32, Device);

        using var output = SageAttention.sageattn_varlen(q, k, k, cuQ, cuK, 200, 300, is_causal: true);
        using var doubled = output * 2;
        using var finite = doubled.isfinite().all();

        Assert.Equal(DeviceType.CUDA, output.device_type);
        Assert.True(finite.item<bool>());
    }
}

/// <summary>
/// The wgmma kernel's packed form through sageattn_varlen on an sm_90 GPU (the automatic packed choice there, with FP16
/// values). Each sequence must equal the dense wgmma kernel on it alone (relL1 ≤ 1e-4: the same quantized inputs and
/// arithmetic), and the batch must meet the float64 bars.
/// </summary>
[Trait("gpu", "true")]
public sealed class SageAttentionVarlenApiPackedWgmmaTests
{
    private static void RequireDevice()
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
        var info = SageAttn.Kernels.Runtime.CudaDriver.GetDeviceInfo(0);
        if (info.ComputeCapability != (9, 0))
            Assert.Skip($"the wgmma kernel needs sm_90; this GPU is sm_{info.ComputeCapabilityMajor}{info.ComputeCapabilityMinor}");
    }

    [Theory]
    [InlineData(AttentionVariant.HopperQkInt8PvFp8)]
    [InlineData(AttentionVariant.HopperQkInt8PvFp16)]
    public void PackedWgmmaMatchesReferenceAndDense(AttentionVariant variant)
    {
        RequireDevice();
        // Short sequences, a length-1 one, cached prefixes and a key ring that wraps; then a prefill-sized batch.
        VarlenApiBatch.Run(torch.CUDA, [1, 65, 130], [30, 100, 330], hq: 4, hkv: 2, d: 64, ScalarType.Float16, causal: true, variant);
        VarlenApiBatch.Run(torch.CUDA, [1000, 3000, 1500, 2222], [1000, 3300, 2500, 2222], hq: 16, hkv: 4, d: 128, ScalarType.Float16,
            causal: true, variant);
    }
}

/// <summary>The packed-batch check of <see cref="SageAttentionVarlenApiTests"/>, for classes that cannot derive from it.</summary>
internal static class VarlenApiBatch
{
    /// <summary>The variant <c>sageattn_varlen</c> runs for <paramref name="settings"/> on this test's device.</summary>
    private static AttentionVariant PackedVariant(Device device, SageAttentionSettings settings)
    {
        if (device.type != DeviceType.CUDA)
            return settings.Resolve(null, packed: true).Variant;
        var info = SageAttn.Kernels.Runtime.CudaDriver.GetDeviceInfo(device.index < 0 ? 0 : device.index);
        return settings.Resolve(info.ComputeCapability, packed: true).Variant;
    }

    /// <summary>Runs a packed batch through the API on <paramref name="device"/> and checks output, LSE and per-sequence agreement with the dense API.</summary>
    public static void Run(Device device, int[] lengthsQ, int[] lengthsK, int hq, int hkv, int d, ScalarType type, bool causal, AttentionVariant? variant,
        bool checkDense = true)
    {
        using var generator = new torch.Generator((ulong)(lengthsQ.Sum() + 17 * hq));
        int tq = lengthsQ.Sum(), tk = lengthsK.Sum();
        using var q = TorchReference.Randn(generator, [tq, hq, d], type, device);
        using var k = TorchReference.Randn(generator, [tk, hkv, d], type, device, channelOffset: 4);
        using var v = TorchReference.Randn(generator, [tk, hkv, d], type, device);
        int[] cuQ = TestData.Offsets(lengthsQ), cuK = TestData.Offsets(lengthsK);
        using var cuQTensor = torch.tensor(cuQ, ScalarType.Int32, device);
        using var cuKTensor = torch.tensor(cuK, ScalarType.Int32, device);
        var settings = new SageAttentionSettings { Variant = variant };

        var (output, lse) = SageAttention.sageattn_varlen_with_lse(q, k, v, cuQTensor, cuKTensor, lengthsQ.Max(), lengthsK.Max(),
            is_causal: causal, options: settings);
        using var o = output;
        using var l = lse;

        Assert.Equal(new long[] { tq, hq, d }, o.shape);
        Assert.Equal(type, o.dtype);
        Assert.Equal(device.type, o.device_type);
        Assert.Equal(new long[] { hq, tq }, l.shape);
        Assert.Equal(ScalarType.Float32, l.dtype);
        bool fp16Pv = PackedVariant(device, settings).HasFp16Values();
        var references = new List<Tensor>();
        double maxLseError = 0;
        try
        {
            for (int s = 0; s < lengthsQ.Length; s++)
            {
                using var qs = q.narrow(0, cuQ[s], lengthsQ[s]).unsqueeze(0);
                using var ks = k.narrow(0, cuK[s], lengthsK[s]).unsqueeze(0);
                using var vs = v.narrow(0, cuK[s], lengthsK[s]).unsqueeze(0);
                var (reference, referenceLse) = TorchReference.Attention(qs, ks, vs, nhd: true, causal, lengthsK[s] - lengthsQ[s], null);
                using (referenceLse)
                {
                    // Reference [1, H, L, D] → [L, H, D] to line up with the packed output.
                    references.Add(reference.squeeze(0).permute(1, 0, 2).contiguous());
                    reference.Dispose();
                    using var lseSequence = l.narrow(1, cuQ[s], lengthsQ[s]).to(DeviceType.CPU).to(ScalarType.Float64);
                    using var error = (lseSequence - referenceLse.squeeze(0)).abs().max();
                    maxLseError = Math.Max(maxLseError, error.item<double>());
                }
                if (checkDense)
                {
                    // The same kernel variant as the packed call (the automatic choice differs on sm_90: wgmma for dense calls only).
                    using var dense = SageAttention.sageattn(qs, ks, vs, "NHD", is_causal: causal, options: new SageAttentionSettings { Variant = PackedVariant(device, settings) });
                    using var packed = o.narrow(0, cuQ[s], lengthsQ[s]).unsqueeze(0);
                    var (relL1, _, _) = TorchReference.Compare(packed, dense);
                    Assert.True(relL1 <= 1e-4, $"sequence {s}: packed differs from sageattn on the sequence alone by relL1 {relL1:E3}");
                }
            }
            using var all = torch.cat(references, 0);
            var (rel, cosine, _) = TorchReference.Compare(o, all);
            Assert.True(rel <= (fp16Pv ? 0.02 : 0.06), $"relL1 {rel:F4}");
            Assert.True(cosine >= 0.998, $"cosine {cosine:F5}");
            Assert.True(maxLseError < 0.05, $"max |lse - ref| = {maxLseError}");
        }
        finally
        {
            foreach (var r in references)
                r.Dispose();
        }
    }
}
