namespace SageAttn.Kernels.Host;

/// <summary>How the launchers quantize Q, K and V; both give bit-identical quantized tensors.</summary>
public enum QuantizationPath
{
    /// <summary>Two launches: K and V channel statistics together, then Q, K and V tiles in one grid.</summary>
    Fused = 0,
    /// <summary>Five launches: channel statistics of K, of V, INT8 Q, INT8 K, V (the first implementation; kept for comparison).</summary>
    Separate = 1,
    /// <summary>
    /// One launch (<c>QkvQuantizeOneLaunchKernel</c>): each head's statistics, then, a few thousand blocks later, its K and
    /// V tiles, so the statistics overlap the quantization instead of running alone first (the driver path's default).
    /// Heads longer than 4096 tokens take <see cref="Fused"/>.
    /// </summary>
    OneLaunch = 2,
}
