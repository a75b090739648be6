using SageAttn.Kernels.Attention;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>Choices that change how attention is quantized and computed.</summary>
public sealed record SageAttentionOptions
{
    /// <summary>P·V precision; v2 (FP8, FP32 two-level accumulation) by default.</summary>
    public AttentionVariant Variant { get; init; } = AttentionVariant.QkInt8PvFp8;

    /// <summary>INT8 scale granularity of Q and K; per-thread (the most accurate) by default.</summary>
    public QuantGranularity Granularity { get; init; } = QuantGranularity.PerThread;

    /// <summary>Subtract the per-channel mean of K before quantizing (default on: it removes K's outlier channels).</summary>
    public bool SmoothK { get; init; } = true;

    /// <summary>Subtract the per-channel mean of V before quantizing and add it back to O.</summary>
    public bool SmoothV { get; init; }

    /// <summary>
    /// Warpgroups (64-row query tiles) per thread block of the wgmma kernel (<see cref="AttentionVariant.HopperQkInt8PvFp8"/>, <see cref="AttentionVariant.HopperQkInt8PvFp16"/>):
    /// 1 to <see cref="HopperAttentionKernel.MaxWarpGroups"/>, or 0 (default) to choose by shape. A tuning knob; other variants ignore it.
    /// </summary>
    public int HopperWarpGroups { get; init; }

    /// <summary>
    /// Runs dense <see cref="AttentionVariant.HopperQkInt8PvFp8"/> calls on the warp-specialized form of the wgmma kernel
    /// (<see cref="HopperAttentionKernel.RunWarpSpecialized"/>: a producer warpgroup and two pipelined consumers per SM,
    /// FA3's layout) instead of two blocks of two warpgroups per SM; on the driver path (<c>CudaSageAttention</c>, what the
    /// TorchSharp API runs) the environment variable <c>SAGEATTN_HOPPER_WARP_SPECIALIZED=1</c> does the same for every call.
    /// Same inputs and accuracy; off by default, since it measured slower (docs/hopper.md). It ignores
    /// <see cref="HopperWarpGroups"/>; FP16 values and packed calls ignore it.
    /// </summary>
    public bool HopperWarpSpecialized { get; init; }

    /// <summary>The V storage the variant needs.</summary>
    public VFormat VFormat =>
        Variant.HasFp16Values() ? VFormat.Fp16
        : Variant == AttentionVariant.QkInt8PvFp8Fp16Accum ? VFormat.Fp8ForFp16Accum
        : VFormat.Fp8ForFp32Accum;
}
