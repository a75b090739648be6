using SageAttn.Kernels.Attention;

namespace SageAttn.Backend;

/// <summary>Which kernel variant runs where, mirroring SageAttention's dispatch by architecture.</summary>
/// <remarks>
/// sm_80/86 have INT8 but no FP8 tensor cores, so P·V stays FP16. sm_89 (Ada) gets v2++ (FP8 P·V with FP16
/// accumulation, its fastest path). sm_90 (H100/H200) gets the wgmma kernel
/// (<see cref="AttentionVariant.HopperQkInt8PvFp8"/>), SageAttention2's own sm90 choice: 1.3–1.9x the mma.sync kernels end to
/// end at the same accuracy as v2 (H100, 2026-11-25: 388 vs 213 TOPS at N = 16K, hd 128; relative L1 0.038;
/// docs/performance.md). Packed (varlen) calls have no wgmma kernel, so there sm_90 keeps FP16 P·V (the fastest
/// mma.sync kernel there, relative L1 0.011), as do newer GPUs (arch-specific sm_90a code does not run on them). The
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
    /// <param name="packed">For packed (varlen) sequences, which the wgmma kernel takes only with SAGEATTN_PACKED_WGMMA=1 until verified on a GPU.</param>
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
        return Compare(computeCapability, Hopper) == 0 && !packed ? AttentionVariant.HopperQkInt8PvFp8 : AttentionVariant.QkInt8PvFp16;
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
    /// <param name="packed">For packed (varlen) sequences, which the wgmma kernel takes only with SAGEATTN_PACKED_WGMMA=1 until verified on a GPU.</param>
    /// <exception cref="NotSupportedException">The device is older than sm_80 or cannot run <paramref name="requested"/>.</exception>
    public static AttentionVariant ForCuda((int Major, int Minor) computeCapability, AttentionVariant? requested, bool packed = false)
    {
        var auto = Auto(computeCapability, packed);
        if (requested is not { } variant)
            return auto;
        RequirePackedSupport(variant, packed);
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

    /// <summary>Throws when <paramref name="variant"/> is asked for packed sequences but has no (verified) packed kernel (<see cref="VarlenAttentionKernel.RequireSupported"/>).</summary>
    /// <exception cref="NotSupportedException"><paramref name="variant"/> is the wgmma kernel and <paramref name="packed"/> is set.</exception>
    public static void RequirePackedSupport(AttentionVariant variant, bool packed)
    {
        if (packed)
            VarlenAttentionKernel.RequireSupported(variant);
    }

    private static int Compare((int Major, int Minor) a, (int Major, int Minor) b) =>
        a.Major != b.Major ? a.Major.CompareTo(b.Major) : a.Minor.CompareTo(b.Minor);
}
