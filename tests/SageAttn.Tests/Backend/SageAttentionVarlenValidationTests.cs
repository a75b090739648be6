using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>Every argument of sageattn_varlen is checked with an exception naming it (CPU tensors; nothing is launched).</summary>
public sealed class SageAttentionVarlenValidationTests
{
    private static Tensor Packed(long tokens, long heads, long d = 64, ScalarType type = ScalarType.Float16) =>
        torch.zeros([tokens, heads, d], type);

    private static Tensor Cu(params int[] offsets) => torch.tensor(offsets, ScalarType.Int32);

    private static void ThrowsNaming(string param, Func<Tensor> call)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => { using var _ = call(); });
        Assert.Equal(param, e.ParamName);
    }

    [Fact]
    public void CuSeqlensMustBeInt32()
    {
        using Tensor q = Packed(10, 2), k = Packed(10, 2), cuQ = torch.tensor(new long[] { 0, 10 }), cuK = Cu(0, 10);
        ThrowsNaming("cu_seqlens_q", () => SageAttention.sageattn_varlen(q, k, k, cuQ, cuK, 10, 10));
        ThrowsNaming("cu_seqlens_k", () => SageAttention.sageattn_varlen(q, k, k, cuK, cuQ, 10, 10));
    }

    [Fact]
    public void RanksAreChecked()
    {
        using Tensor q = Packed(10, 2), k = Packed(10, 2), q4 = torch.zeros([1, 10, 2, 64], ScalarType.Float16);
        using Tensor cu = Cu(0, 10), cu2 = torch.zeros([1, 2], ScalarType.Int32);
        ThrowsNaming("q", () => SageAttention.sageattn_varlen(q4, k, k, cu, cu, 10, 10));
        ThrowsNaming("k", () => SageAttention.sageattn_varlen(q, q4, k, cu, cu, 10, 10));
        ThrowsNaming("v", () => SageAttention.sageattn_varlen(q, k, q4, cu, cu, 10, 10));
        ThrowsNaming("cu_seqlens_q", () => SageAttention.sageattn_varlen(q, k, k, cu2, cu, 10, 10));
    }

    [Fact]
    public void BatchSizesMustAgree()
    {
        using Tensor q = Packed(10, 2), k = Packed(10, 2), cuQ = Cu(0, 5, 10), cuK = Cu(0, 10), one = Cu(0);
        ThrowsNaming("cu_seqlens_k", () => SageAttention.sageattn_varlen(q, k, k, cuQ, cuK, 10, 10));
        ThrowsNaming("cu_seqlens_q", () => SageAttention.sageattn_varlen(q, k, k, one, one, 10, 10));
    }

    [Fact]
    public void MaxSeqlenTooSmallIsRejected()
    {
        using Tensor q = Packed(10, 2), k = Packed(12, 2), cuQ = Cu(0, 4, 10), cuK = Cu(0, 6, 12);
        // Shapes alone: 2 sequences of at most 4 queries cannot hold 10.
        ThrowsNaming("max_seqlen_q", () => SageAttention.sageattn_varlen(q, k, k, cuQ, cuK, 4, 6));
        // Contents (CPU): the second sequence has 6 queries, more than 5.
        ThrowsNaming("max_seqlen_q", () => SageAttention.sageattn_varlen(q, k, k, cuQ, cuK, 5, 6));
        ThrowsNaming("max_seqlen_k", () => SageAttention.sageattn_varlen(q, k, k, cuQ, cuK, 6, 5));
        ThrowsNaming("max_seqlen_k", () => SageAttention.sageattn_varlen(q, k, k, cuQ, cuK, 6, 0));
    }

    [Fact]
    public void CuSeqlensContentsAreCheckedOnCpu()
    {
        using Tensor q = Packed(10, 2), k = Packed(10, 2), good = Cu(0, 5, 10);
        using Tensor notZero = Cu(1, 5, 10), decreasing = Cu(0, 7, 6), wrongEnd = Cu(0, 5, 9);
        ThrowsNaming("cu_seqlens_q", () => SageAttention.sageattn_varlen(q, k, k, notZero, good, 10, 10));
        ThrowsNaming("cu_seqlens_q", () => SageAttention.sageattn_varlen(q, k, k, decreasing, good, 10, 10));
        ThrowsNaming("cu_seqlens_k", () => SageAttention.sageattn_varlen(q, k, k, good, wrongEnd, 10, 10));
    }

    [Fact]
    public void ShapesDtypesAndScaleAreChecked()
    {
        using Tensor q = Packed(10, 4), k = Packed(10, 2), cu = Cu(0, 10);
        using Tensor k3 = Packed(10, 3), kD = Packed(10, 2, 32), vT = Packed(9, 2), kBf = Packed(10, 2, type: ScalarType.BFloat16);
        using Tensor q32 = Packed(10, 4, type: ScalarType.Float32), noKeys = Packed(0, 2), cuNoKeys = Cu(0, 0);
        ThrowsNaming("k", () => SageAttention.sageattn_varlen(q, k3, k3, cu, cu, 10, 10));
        ThrowsNaming("k", () => SageAttention.sageattn_varlen(q, kD, kD, cu, cu, 10, 10));
        ThrowsNaming("v", () => SageAttention.sageattn_varlen(q, k, vT, cu, cu, 10, 10));
        ThrowsNaming("k", () => SageAttention.sageattn_varlen(q, kBf, kBf, cu, cu, 10, 10));
        ThrowsNaming("k", () => SageAttention.sageattn_varlen(q, noKeys, noKeys, cu, cuNoKeys, 10, 1));
        ThrowsNaming("sm_scale", () => SageAttention.sageattn_varlen(q, k, k, cu, cu, 10, 10, sm_scale: -1));
        Assert.Throws<NotSupportedException>(() => SageAttention.sageattn_varlen(q32, k, k, cu, cu, 10, 10));
        Assert.Throws<ArgumentNullException>(() => SageAttention.sageattn_varlen(q, k, k, null!, cu, 10, 10));
    }
}
