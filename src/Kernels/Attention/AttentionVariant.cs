namespace SageAttn.Kernels.Attention;

/// <summary>The P·V precision of a Sage attention kernel (Q·Kᵀ is always INT8).</summary>
public enum AttentionVariant
{
    /// <summary>SageAttention2 (v2): P and V in FP8 e4m3, each 64-key block accumulated in a fresh FP32 buffer, then added to the FP32 output.</summary>
    QkInt8PvFp8 = 0,
    /// <summary>SageAttention2++ (v2++): FP8 P·V accumulated in FP16 per 64-key block (faster on sm89/sm90), then added in FP32.</summary>
    QkInt8PvFp8Fp16Accum = 1,
    /// <summary>FP16 P and V with FP32 accumulation: for sm80/86, and the accurate mode.</summary>
    QkInt8PvFp16 = 2,
    /// <summary>SageAttention2's Hopper algorithm (v2 numerics, except that the softmax denominators sum the e4m3-rounded P: <see cref="AttentionVariants.SumsRoundedP"/>) on wgmma warpgroup tensor cores: needs sm_90 exactly (PTX for sm_90a) or the CPU accelerator.</summary>
    HopperQkInt8PvFp8 = 3,
    /// <summary>The accurate mode on wgmma: FP16 P and V, accumulated in FP32 by the tensor cores (<see cref="QkInt8PvFp16"/>'s numerics); sm_90 only, as <see cref="HopperQkInt8PvFp8"/>.</summary>
    HopperQkInt8PvFp16 = 4,
}
