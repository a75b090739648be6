using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>Bad input to the paged decode and merge entries: a clear exception naming the argument, never a launch.</summary>
public sealed class PagedAttentionValidationTests
{
    // A valid call: B 2, Hq 4, Hkv 2, D 64, 3 blocks of 16.
    private static Tensor Q(long b = 2, long h = 4, long d = 64, ScalarType t = ScalarType.Float16) => torch.zeros([b, h, d], t);
    private static Tensor Cache(long blocks = 3, long hkv = 2, long bs = 16, long d = 64, ScalarType t = ScalarType.Float16) =>
        torch.zeros([blocks, hkv, bs, d], t);
    private static Tensor Tables(long b = 2, long cols = 2, ScalarType t = ScalarType.Int32) => torch.zeros([b, cols], t);
    private static Tensor Lens(long b = 2, ScalarType t = ScalarType.Int32) => torch.ones([b], t);

    private static void Throws(string param, Func<Tensor> call)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => call().Dispose());
        Assert.Equal(param, e.ParamName);
    }

    [Fact]
    public void ValidCallRuns()
    {
        using var o = PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(), 1);
        Assert.Equal([2L, 4, 64], o.shape);
    }

    [Fact]
    public void QRankIsChecked() => Throws("q", () => PagedAttention.decode(torch.zeros([2, 4, 1, 64], ScalarType.Float16), Cache(), Cache(), Tables(), Lens(), 1));

    [Fact]
    public void CacheDtypeMustMatchQ() => Throws("k_cache", () => PagedAttention.decode(Q(), Cache(t: ScalarType.BFloat16), Cache(), Tables(), Lens(), 1));

    [Fact]
    public void ValueCacheShapeMustMatchKeyCache() => Throws("v_cache", () => PagedAttention.decode(Q(), Cache(), Cache(blocks: 4), Tables(), Lens(), 1));

    [Fact]
    public void CacheMustBeContiguous() =>
        Throws("k_cache", () => PagedAttention.decode(Q(), torch.zeros([3, 16, 2, 64], ScalarType.Float16).transpose(1, 2), Cache(), Tables(), Lens(), 1));

    [Fact]
    public void BlockTablesMustBeInt32() => Throws("block_tables", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(t: ScalarType.Int64), Lens(), 1));

    [Fact]
    public void BlockTablesRowsMustMatchBatch() => Throws("block_tables", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(b: 3), Lens(), 1));

    [Fact]
    public void SeqLensLengthMustMatchBatch() => Throws("seq_lens", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(b: 1), 1));

    [Fact]
    public void HeadDimMustBe64Or128() => Throws("q", () => PagedAttention.decode(Q(d: 96), Cache(d: 96), Cache(d: 96), Tables(), Lens(), 1));

    [Fact]
    public void HeadDimsMustAgree() => Throws("k_cache", () => PagedAttention.decode(Q(d: 64), Cache(d: 128), Cache(d: 128), Tables(), Lens(), 1));

    [Fact]
    public void QueryHeadsMustBeAMultipleOfKvHeads() => Throws("q", () => PagedAttention.decode(Q(h: 3), Cache(), Cache(), Tables(), Lens(), 1));

    [Fact]
    public void GroupLargerThan16IsRejected() => Throws("q", () => PagedAttention.decode(Q(h: 34), Cache(), Cache(), Tables(), Lens(), 1));

    [Fact]
    public void BlockSizeMustBeAMultipleOf16() => Throws("k_cache", () => PagedAttention.decode(Q(), Cache(bs: 8), Cache(bs: 8), Tables(), Lens(), 1));

    [Fact]
    public void MaxSeqLenBeyondTheBlockTableIsRejected() => Throws("max_seq_len", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(), 33));

    [Fact]
    public void NegativeMaxSeqLenIsRejected() => Throws("max_seq_len", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(), -1));

    [Fact]
    public void ScaleMustBePositive() => Throws("sm_scale", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(), 1, sm_scale: 0));

    [Fact]
    public void SplitsMustBePositive() => Throws("num_splits", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(), 1, num_splits: 0));

    [Fact]
    public void OutputShapeMustMatchQ() =>
        Throws("output", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(), 1, output: torch.zeros([2, 4, 32], ScalarType.Float16)));

    [Fact]
    public void OutputDtypeMustMatchQ() =>
        Throws("output", () => PagedAttention.decode(Q(), Cache(), Cache(), Tables(), Lens(), 1, output: torch.zeros([2, 4, 64], ScalarType.BFloat16)));

    [Fact]
    public void NullTensorNamesTheArgument()
    {
        var e = Assert.Throws<ArgumentNullException>(() => PagedAttention.decode(Q(), Cache(), Cache(), null!, Lens(), 1));
        Assert.Equal("block_tables", e.ParamName);
    }

    [Fact]
    public void UnsupportedDtypeIsNotSupported() =>
        Assert.Throws<NotSupportedException>(() => PagedAttention.decode(Q(t: ScalarType.Float32), Cache(t: ScalarType.Float32), Cache(t: ScalarType.Float32), Tables(), Lens(), 1));

    [Fact]
    public void MergeNeedsOneLsePerOutput()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            AttentionMerge.merge_attention_states([torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4)], [torch.zeros(1, 1, 2)]));
        Assert.Equal("lses", e.ParamName);
    }

    [Fact]
    public void MergeOutputsMustShareAShape()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            AttentionMerge.merge_attention_states([torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 3, 4)], [torch.zeros(1, 1, 2), torch.zeros(1, 1, 3)]));
        Assert.Equal("outputs", e.ParamName);
    }

    [Fact]
    public void MergeLseMustBeFloat32OfTheRows()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            AttentionMerge.merge_attention_states([torch.zeros(1, 1, 2, 4)], [torch.zeros([1, 1, 2], ScalarType.Float64)]));
        Assert.Equal("lses", e.ParamName);
    }

    [Fact]
    public void MergeLayoutStringIsChecked()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() =>
            AttentionMerge.merge_attention_states([torch.zeros(1, 1, 2, 4)], [torch.zeros(1, 1, 2)], "BHND"));
        Assert.Equal("tensor_layout", e.ParamName);
    }

    [Fact]
    public void MergeNeedsAtLeastOnePartial()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => AttentionMerge.merge_attention_states([], []));
        Assert.Equal("outputs", e.ParamName);
    }
}
