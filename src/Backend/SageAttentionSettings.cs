using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;

namespace SageAttn.Backend;

/// <summary>
/// What the TorchSharp API lets a caller choose: the kernel variant (or automatic choice by device),
/// the INT8 scale granularity and K/V smoothing. Resolved into the kernels' <see cref="SageAttentionOptions"/>
/// once the device is known.
/// </summary>
/// <remarks>
/// Why a separate type: <see cref="SageAttentionOptions"/> always names a concrete variant because the
/// kernels need one; only the facade knows the device, so "auto" lives here.
/// </remarks>
public sealed record SageAttentionSettings
{
    /// <summary>The defaults: automatic variant, per-thread scales, K smoothing on, V smoothing off.</summary>
    public static SageAttentionSettings Default { get; } = new();

    /// <summary>The P·V variant, or null to pick by device (see <see cref="VariantSelector"/>).</summary>
    public AttentionVariant? Variant { get; init; }

    /// <summary>INT8 scale granularity of Q and K.</summary>
    public QuantGranularity Granularity { get; init; } = QuantGranularity.PerThread;

    /// <summary>Subtract the per-channel mean of K before quantizing (removes K's outlier channels).</summary>
    public bool SmoothK { get; init; } = true;

    /// <summary>Subtract the per-channel mean of V before quantizing and add it back to the output.</summary>
    public bool SmoothV { get; init; }

    /// <summary>The kernel options for a device of compute capability <paramref name="computeCapability"/>, or the CPU accelerator when null.</summary>
    /// <param name="computeCapability">The CUDA device's compute capability; null for the CPU accelerator.</param>
    /// <param name="packed">For packed (varlen) sequences, whose automatic choice on sm_90 keeps FP16 P·V (<see cref="VariantSelector.Auto"/>).</param>
    /// <exception cref="NotSupportedException">The device is older than sm_80 or the explicit variant needs tensor cores it lacks.</exception>
    public SageAttentionOptions Resolve((int Major, int Minor)? computeCapability, bool packed = false) => new()
    {
        Variant = computeCapability is { } cc ? VariantSelector.ForCuda(cc, Variant, packed) : Variant ?? VariantSelector.Cpu,
        Granularity = Granularity,
        SmoothK = SmoothK,
        SmoothV = SmoothV,
    };
}
