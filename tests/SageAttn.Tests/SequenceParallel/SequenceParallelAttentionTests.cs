using SageAttn.Backend;
using SageAttn.Backend.SequenceParallel;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.SequenceParallel;

/// <summary>
/// Ring attention split over partitions and merged from the LSE equals unsplit attention: against float64 (the
/// sageattn bars) and against the single-call kernel, on CPU partitions (CI), one GPU split in two, and several GPUs.
/// </summary>
public abstract class SequenceParallelAttentionTests
{
    protected abstract Device[] Partitions(int count);

    protected virtual void Require(int partitions)
    {
    }

    public static TheoryData<string, int, int, int, bool, int> Cases => new()
    {
        // layout, Hq, Hkv, N, causal, partitions
        { "HND", 2, 2, 150, false, 3 },
        { "NHD", 4, 2, 130, true, 2 },
        { "HND", 4, 1, 97, true, 3 },
        { "HND", 2, 2, 64, false, 1 },
        // Four partitions (four GPUs in the multi-GPU class): a ring of four steps, causal zigzag over eight chunks.
        { "HND", 2, 2, 300, false, 4 },
        { "NHD", 4, 2, 260, true, 4 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void SplitAndMergedEqualsUnsplitAttention(string layout, int hq, int hkv, int n, bool causal, int partitions)
    {
        Require(partitions);
        using var generator = new torch.Generator((ulong)(4321 + n));
        bool nhd = layout == "NHD";
        var device = Partitions(1)[0];
        using var q = TorchReference.Randn(generator, nhd ? [1, n, hq, 64] : [1, hq, n, 64], ScalarType.Float16, device);
        using var k = TorchReference.Randn(generator, nhd ? [1, n, hkv, 64] : [1, hkv, n, 64], ScalarType.Float16, device, channelOffset: 4);
        using var v = TorchReference.Randn(generator, nhd ? [1, n, hkv, 64] : [1, hkv, n, 64], ScalarType.Float16, device);
        using var poison = torch.full(q.shape, double.NaN, ScalarType.Float16, device);

        var (output, lse) = SequenceParallelAttention.sageattn_sequence_parallel_with_lse(q, k, v, Partitions(partitions), layout, causal);
        using var o = output;
        using var l = lse;
        using var single = SageAttention.sageattn(q, k, v, layout, causal);

        Assert.Equal(q.shape, o.shape);
        Assert.Equal(q.dtype, o.dtype);
        Assert.Equal(device.type, o.device_type);
        Assert.Equal(new long[] { 1, hq, n }, l.shape);
        var (reference, referenceLse) = TorchReference.Attention(q, k, v, nhd, causal, 0, null);
        using var _ = reference;
        using var __ = referenceLse;
        using var hnd = nhd ? o.permute(0, 2, 1, 3) : o.alias();
        var (relL1, cosine, _) = TorchReference.Compare(hnd, reference);
        Assert.True(relL1 <= 0.06 && cosine >= 0.998, $"vs float64: relL1 {relL1:F4}, cosine {cosine:F5}");
        // Two FP8 results differ from each other by about their own error: compare both against float64 instead.
        using var singleHnd = nhd ? single.permute(0, 2, 1, 3) : single.alias();
        var (relSingle, _, _) = TorchReference.Compare(singleHnd, reference);
        Assert.True(relL1 <= relSingle * 1.2 + 0.002, $"split relL1 {relL1:F4} vs single-call relL1 {relSingle:F4}");
        using var lse64 = l.to(DeviceType.CPU).to(ScalarType.Float64);
        using var lseError = (lse64 - referenceLse).abs().max();
        Assert.True(lseError.item<double>() < 0.05, $"max |lse - ref| = {lseError.item<double>()}");
        using var finite = o.isfinite().all();
        Assert.True(finite.item<bool>());
    }

    [Fact]
    public void BadArgumentsNameTheArgument()
    {
        Require(1);
        var device = Partitions(1)[0];
        using var generator = new torch.Generator(5);
        using var q = TorchReference.Randn(generator, [1, 2, 32, 64], ScalarType.Float16, device);
        using var kShort = TorchReference.Randn(generator, [1, 2, 16, 64], ScalarType.Float16, device);
        using var rank3 = TorchReference.Randn(generator, [2, 32, 64], ScalarType.Float16, device);

        Assert.Equal("devices", Assert.Throws<ArgumentException>(() =>
            SequenceParallelAttention.sageattn_sequence_parallel(q, q, q, [])).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() =>
            SequenceParallelAttention.sageattn_sequence_parallel(q, kShort, kShort, Partitions(1))).ParamName);
        Assert.Equal("v", Assert.Throws<ArgumentException>(() =>
            SequenceParallelAttention.sageattn_sequence_parallel(q, q, rank3, Partitions(1))).ParamName);
        Assert.Equal("tensor_layout", Assert.Throws<ArgumentException>(() =>
            SequenceParallelAttention.sageattn_sequence_parallel(q, q, q, Partitions(1), "BHND")).ParamName);
        // 17 causal partitions need 34 chunks: more than the 32 tokens.
        Assert.Equal("tokens", Assert.Throws<ArgumentOutOfRangeException>(() =>
            SequenceParallelAttention.sageattn_sequence_parallel(q, q, q, Partitions(17), is_causal: true)).ParamName);
    }
}

/// <summary>Partitions on the CPU accelerator (CI).</summary>
public sealed class SequenceParallelAttentionCpuTests : SequenceParallelAttentionTests
{
    protected override Device[] Partitions(int count) => [.. Enumerable.Repeat(torch.CPU, count)];
}

/// <summary>Partitions on one GPU: the split, ring and merge on CUDA tensors.</summary>
[Trait("gpu", "true")]
public sealed class SequenceParallelAttentionOneGpuTests : SequenceParallelAttentionTests
{
    protected override Device[] Partitions(int count) => [.. Enumerable.Repeat(torch.CUDA, count)];

    protected override void Require(int partitions)
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
    }
}

/// <summary>One partition per GPU, peer copies between devices: needs as many GPUs as partitions.</summary>
[Trait("gpu", "true")]
public sealed class SequenceParallelAttentionMultiGpuTests : SequenceParallelAttentionTests
{
    protected override Device[] Partitions(int count) =>
        [.. Enumerable.Range(0, count).Select(i => torch.device(DeviceType.CUDA, i % Math.Max(1, CudaCount)))];

    private static int CudaCount => torch.cuda.is_available() ? (int)torch.cuda.device_count() : 0;

    protected override void Require(int partitions)
    {
        if (CudaCount < Math.Max(2, partitions))
            Assert.Skip($"needs {Math.Max(2, partitions)} CUDA devices, this machine has {CudaCount} (run on a multi-GPU machine)");
    }
}
