using ILGPU;
using ILGPU.Runtime;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// Sage attention over packed sequences (varlen prefill, chunked prefill, prefix caching) in one launch for
/// the whole batch: the <see cref="AttentionKernel"/> body with its sequences resolved from cu_seqlens.
/// </summary>
/// <remarks>
/// Grid (ceil(max_seqlen_q / 64), Hq, B): block (tile, h, s) owns query rows 64·tile.. of sequence s and exits
/// at once when the sequence is shorter (FlashAttention's varlen scheme: the host never reads cu_seqlens).
/// Query i of a sequence with Lq queries and Lk keys sees key j iff j ≤ i + (Lk − Lq) when causal
/// (bottom-right: the new tokens follow a cached prefix). Layouts: <see cref="AttentionParams.QSequences"/>.
/// </remarks>
public static class VarlenAttentionKernel
{
    /// <summary>Kernel entry.</summary>
    /// <param name="p">Tensors, sizes and the packed sequences.</param>
    /// <param name="variant">An <see cref="AttentionVariant"/> value, fixed at compile time.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    public static void Run(AttentionParams p, SpecializedValue<int> variant, SpecializedValue<int> paddedHeadDim) =>
        AttentionKernel.Attend(p, variant, paddedHeadDim, packed: true);
}
