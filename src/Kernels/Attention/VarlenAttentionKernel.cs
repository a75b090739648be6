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
    /// <summary>
    /// Throws for a variant this kernel has no form of: the wgmma variants, whose packed form
    /// (<see cref="HopperAttentionKernel.RunPacked"/>) runs on the CPU emulation and, until verified on a GPU, on CUDA only
    /// with SAGEATTN_PACKED_WGMMA=1.
    /// </summary>
    /// <exception cref="NotSupportedException"><paramref name="variant"/> is a wgmma variant (<see cref="AttentionVariants.IsHopper"/>).</exception>
    public static void RequireSupported(AttentionVariant variant)
    {
        if (variant.IsHopper() && Environment.GetEnvironmentVariable(PackedWgmmaVariable) != "1")
            throw new NotSupportedException(
                $"options.Variant {variant} has no verified packed (varlen) kernel on CUDA yet (SAGEATTN_PACKED_WGMMA=1 runs the untested one); use " +
                (variant == AttentionVariant.HopperQkInt8PvFp16
                    ? $"{AttentionVariant.QkInt8PvFp16} (the same numerics on mma.sync)."
                    : $"{AttentionVariant.QkInt8PvFp8} (the same numerics on mma.sync) or {AttentionVariant.QkInt8PvFp16}."));
    }

    /// <summary>
    /// The environment variable that, set to "1", lets CUDA calls run the wgmma kernel's packed form before it has been
    /// verified on a GPU (its CPU-emulation tests pass; docs/hopper.md).
    /// </summary>
    public const string PackedWgmmaVariable = "SAGEATTN_PACKED_WGMMA";

    /// <summary>Kernel entry.</summary>
    /// <param name="p">Tensors, sizes and the packed sequences.</param>
    /// <param name="variant">An <see cref="AttentionVariant"/> value, fixed at compile time.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    public static void Run(AttentionParams p, SpecializedValue<int> variant, SpecializedValue<int> paddedHeadDim) =>
        AttentionKernel.Attend(p, variant, paddedHeadDim, packed: true);
}
