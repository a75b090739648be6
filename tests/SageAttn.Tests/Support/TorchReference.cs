using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Support;

/// <summary>torch's own SDPA (math) in float64 on CPU as the reference, plus the metrics the tests assert on.</summary>
public static class TorchReference
{
    /// <summary>
    /// Random [.., .., .., D] input of the given dtype on <paramref name="device"/>, with an optional per-channel offset
    /// (K outliers), drawn from the test's own <paramref name="random"/>: torch's global generator is shared by the tests
    /// that run in parallel, so inputs drawn from it depend on what else runs (a 4K case once landed on its bar that way).
    /// </summary>
    public static Tensor Randn(torch.Generator random, long[] shape, ScalarType dtype, Device device, double channelOffset = 0)
    {
        using var x = torch.randn(shape, ScalarType.Float32, generator: random);
        using var offset = torch.randn([shape[^1]], ScalarType.Float32, generator: random) * channelOffset;
        using var sum = x + offset;
        return sum.to(dtype).to(device);
    }

    /// <summary>[B, H, N, D] float64 CPU copy of a tensor in HND or NHD layout.</summary>
    public static Tensor Hnd64(Tensor t, bool nhd)
    {
        using var cpu = t.to(DeviceType.CPU).to(ScalarType.Float64);
        return nhd ? cpu.permute(0, 2, 1, 3).contiguous() : cpu.contiguous();
    }

    /// <summary>
    /// softmax(Q Kᵀ · scale + mask) V and the natural-log LSE by torch in float64, K/V heads repeated for GQA;
    /// causal keys j ≤ i + offset.
    /// </summary>
    public static (Tensor Output, Tensor Lse) Attention(Tensor q, Tensor k, Tensor v, bool nhd, bool causal, int causalOffset, double? scale)
    {
        using var q64 = Hnd64(q, nhd);
        using var k64r = Hnd64(k, nhd);
        using var v64r = Hnd64(v, nhd);
        // Inputs are finite randn when a test makes them; a non-finite one here means device memory was overwritten
        // after that (the intermittent GPU failure that led to the primary-context fix), not a reference problem.
        AssertFinite(q64, "the reference's input q is not finite: it was overwritten after the test created it");
        AssertFinite(k64r, "the reference's input k is not finite: it was overwritten after the test created it");
        AssertFinite(v64r, "the reference's input v is not finite: it was overwritten after the test created it");
        long group = q64.shape[1] / k64r.shape[1];
        using var k64 = k64r.repeat_interleave(group, 1);
        using var v64 = v64r.repeat_interleave(group, 1);
        long d = q64.shape[3], nq = q64.shape[2], nk = k64.shape[2];
        double s = scale ?? 1.0 / Math.Sqrt(d);
        Tensor? mask = null;
        if (causal)
        {
            using var i = torch.arange(nq, ScalarType.Int64).unsqueeze(1);
            using var j = torch.arange(nk, ScalarType.Int64).unsqueeze(0);
            mask = j <= (i + causalOffset);
        }

        // Plain softmax(Q·Kᵀ·s)·V in float64, so every step of the reference is visible here.
        using var logits = torch.matmul(q64, k64.transpose(2, 3)) * s;
        using var masked = mask is null ? logits.alias() : logits.masked_fill(mask.logical_not(), double.NegativeInfinity);
        using var weights = masked.softmax(-1);
        var output = torch.matmul(weights, v64);
        var lse = masked.logsumexp(-1);
        mask?.Dispose();
        AssertFinite(output, "the float64 reference itself is not finite");
        return (output, lse);
    }

    private static void AssertFinite(Tensor t, string message)
    {
        using var finite = t.isfinite().all();
        Assert.True(finite.item<bool>(), message);
    }

    /// <summary>Relative L1, cosine and RMSE of <paramref name="actual"/> (any dtype/device/layout matching <paramref name="reference"/>'s elements) against it.</summary>
    public static (double RelL1, double Cosine, double Rmse) Compare(Tensor actual, Tensor reference)
    {
        using var a = actual.to(DeviceType.CPU).to(ScalarType.Float64).contiguous();
        using var r = reference.to(ScalarType.Float64).contiguous();
        return TestData.Compare(a.data<double>().ToArray(), r.data<double>().ToArray());
    }
}
