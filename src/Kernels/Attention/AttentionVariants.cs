namespace SageAttn.Kernels.Attention;

/// <summary>Facts about <see cref="AttentionVariant"/> values that decide kernels and layouts.</summary>
public static class AttentionVariants
{
    /// <summary>Whether the variant runs the wgmma kernel (<see cref="HopperAttentionKernel"/>, sm_90a).</summary>
    public static bool IsHopper(this AttentionVariant variant) =>
        variant is AttentionVariant.HopperQkInt8PvFp8 or AttentionVariant.HopperQkInt8PvFp16;

    /// <summary>Whether P·V runs in FP16 (V stored as FP16, P unshifted): the accurate mode.</summary>
    public static bool HasFp16Values(this AttentionVariant variant) =>
        variant is AttentionVariant.QkInt8PvFp16 or AttentionVariant.HopperQkInt8PvFp16;

    /// <summary>
    /// Whether the softmax denominators are sums of P as rounded for P·V (e4m3), not of FP32 P: the Hopper FP8 kernel adds
    /// P on the tensor cores (<see cref="HopperRowSoftmax"/>), so each output row is a weighted mean of V with weights that
    /// sum to one exactly as applied.
    /// </summary>
    public static bool SumsRoundedP(this AttentionVariant variant) => variant is AttentionVariant.HopperQkInt8PvFp8;
}
