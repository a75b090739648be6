using SageAttn.Kernels.Attention;

namespace SageAttn.Backend;

/// <summary>Which kernel variant runs where, mirroring SageAttention's dispatch by architecture.</summary>
/// <remarks>
/// sm_80/86 have INT8 but no FP8 tensor cores, so P·V stays FP16. sm_89 (Ada) gets v2++ (FP8 P·V with FP16
/// accumulation, its fastest path). sm_90 (H100/H200) gets the wgmma kernel
/// (<see cref="AttentionVariant.HopperQkInt8PvFp8"/>), SageAttention2's own sm90 choice: 1.3–1.9x the mma.sync kernels end to
/// end at the same accuracy as v2 (H100, 2026-11-25: 388 vs 213 TOPS at N = 16K, hd 128; relative L1 0.038;
/// docs/performance.md). Packed (varlen) calls on sm_90 take the wgmma kernel with FP16 P·V
/// (<see cref="AttentionVariant.HopperQkInt8PvFp16"/>): the numerics the engine's prefill had on mma.sync (relative L1 0.011)
/// at 1.44x its speed (H100, 2026-11-27, packed causal prefill of 512–4096-token sequences: 0.94 vs 1.35 ms; FP8 P·V was
/// 0.82 ms but lowered a random-weight Qwen3's prefill logit cosine from 0.9997 to 0.9973). Newer GPUs keep the mma.sync
/// FP16 P·V kernel (arch-specific sm_90a code does not run on them). The
/// CPU accelerator emulates the tensor cores exactly, so it runs v2 by default to exercise the FP8 path in CI.
/// </remarks>
public static class VariantSelector
{
    /// <summary>The oldest architecture with the INT8 mma.m16n8k32 the kernels use.</summary>
    public static readonly (int Major, int Minor) MinimumCuda = (8, 0);

    /// <summary>The first architecture with e4m3 tensor-core mma.</summary>
    public static readonly (int Major, int Minor) MinimumFp8 = (8, 9);

    /// <summary>The one architecture the wgmma kernel's sm_90a PTX runs on (arch-specific code does not run on newer GPUs).</summary>
    public static readonly (int Major, int Minor) Hopper = (9, 0);

    /// <summary>The variant the CPU accelerator runs by default.</summary>
    public const AttentionVariant Cpu = AttentionVariant.QkInt8PvFp8;

    /// <summary>The automatic variant for a CUDA device.</summary>
    /// <param name="computeCapability">The device's compute capability.</param>
    /// <param name="packed">For packed (varlen) sequences, which keep FP16 P·V.</param>
    /// <exception cref="NotSupportedException">The device is older than sm_80.</exception>
    public static AttentionVariant Auto((int Major, int Minor) computeCapability, bool packed = false)
    {
        if (Compare(computeCapability, MinimumCuda) < 0)
            throw new NotSupportedException(
                $"SageAttention needs sm_80 or newer (INT8 mma.m16n8k32); this device is sm_{computeCapability.Major}{computeCapability.Minor}.");
        if (Compare(computeCapability, MinimumFp8) < 0)
            return AttentionVariant.QkInt8PvFp16;
        if (Compare(computeCapability, Hopper) < 0)
            return AttentionVariant.QkInt8PvFp8Fp16Accum;
        if (Compare(computeCapability, Hopper) == 0)
            return packed ? AttentionVariant.HopperQkInt8PvFp16 : AttentionVariant.HopperQkInt8PvFp8;
        return AttentionVariant.QkInt8PvFp16;
    }

    /// <summary>The variants that can run on a device (empty below sm_80).</summary>
    public static IReadOnlyList<AttentionVariant> Supported((int Major, int Minor) computeCapability) =>
        Compare(computeCapability, MinimumCuda) < 0 ? []
        : Compare(computeCapability, MinimumFp8) < 0 ? [AttentionVariant.QkInt8PvFp16]
        : Compare(computeCapability, Hopper) == 0
            ?
            [
                AttentionVariant.QkInt8PvFp8, AttentionVariant.QkInt8PvFp8Fp16Accum, AttentionVariant.QkInt8PvFp16,
                AttentionVariant.HopperQkInt8PvFp8, AttentionVariant.HopperQkInt8PvFp16,
            ]
        : [AttentionVariant.QkInt8PvFp8, AttentionVariant.QkInt8PvFp8Fp16Accum, AttentionVariant.QkInt8PvFp16];

    /// <summary>The explicit variant if the device can run it, else the automatic one.</summary>
    /// <param name="computeCapability">The device's compute capability.</param>
    /// <param name="requested">The caller's variant, or null for the automatic one.</param>
    /// <param name="packed">For packed (varlen) sequences (the automatic choice differs there).</param>
    /// <exception cref="NotSupportedException">The device is older than sm_80 or cannot run <paramref name="requested"/>.</exception>
    public static AttentionVariant ForCuda((int Major, int Minor) computeCapability, AttentionVariant? requested, bool packed = false)
    {
        var auto = Auto(computeCapability, packed);
        if (requested is not { } variant)
            return auto;
        if (!Supported(computeCapability).Contains(variant))
            throw new NotSupportedException(
                variant.IsHopper()
                    ? $"options.Variant {variant} needs an sm_90 GPU (H100/H200: its wgmma PTX targets sm_90a); this device is sm_{computeCapability.Major}{computeCapability.Minor}. " +
                      (variant.HasFp16Values()
                          ? $"Use {AttentionVariant.QkInt8PvFp16} (the same numerics on mma.sync)."
                          : "Leave Variant null.")
                    : $"options.Variant {variant} needs FP8 tensor cores (sm_89+); this device is sm_{computeCapability.Major}{computeCapability.Minor}. Use {AttentionVariant.QkInt8PvFp16} or leave Variant null.");
        return variant;
    }

    private static int Compare((int Major, int Minor) a, (int Major, int Minor) b) =>
        a.Major != b.Major ? a.Major.CompareTo(b.Major) : a.Minor.CompareTo(b.Minor);
}
