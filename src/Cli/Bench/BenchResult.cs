namespace SageAttn.Cli.Bench;

/// <summary>One implementation on one shape: its times, throughput and accuracy (null where not measured).</summary>
/// <param name="Implementation">"torch-sdpa" or an <c>AttentionVariant</c> name.</param>
/// <param name="EndToEndMs">Median GPU time of one call through the public API (torch SDPA, or SageAttention.sageattn: quantization included).</param>
/// <param name="KernelMs">Median of the attention kernel alone on already-quantized inputs (Sage only).</param>
/// <param name="QuantMs">Median of the quantization alone (fused path; Sage only).</param>
/// <param name="QuantSeparateMs">Median of the quantization through the five separate kernels (for comparison; Sage only).</param>
/// <param name="RelL1">Relative L1 error against float64 on the sampled rows, randn inputs.</param>
/// <param name="Cosine">Cosine similarity against float64, randn inputs.</param>
/// <param name="RelL1OutlierK">Relative L1 with K carrying a per-channel offset of 8·randn.</param>
/// <param name="CosineOutlierK">Cosine similarity with the outlier K.</param>
/// <param name="EndToEndHostMs">
/// Median host time of one end-to-end call (enqueue only; Sage only). The GPU events around a call also count the time
/// the GPU idles while the host enqueues, so a host stall (an allocator call, say) shows in <paramref name="EndToEndMs"/>.
/// </param>
/// <param name="EndToEndStreamMs">
/// GPU time per call of end-to-end calls issued back to back (<see cref="GpuBench.StreamCalls"/> between one pair of
/// events, median of several such runs): the GPU never waits for the host between them unless the host is the slower,
/// as in a model's forward pass. Its difference from <paramref name="EndToEndMs"/> is the idle time before a lone call's
/// first launch.
/// </param>
public sealed record BenchResult(
    string Implementation, int HeadDim, int N, int Batch, int Heads, BenchDType DType, bool Causal,
    double EndToEndMs, double? KernelMs, double? QuantMs, double? QuantSeparateMs,
    double? RelL1, double? Cosine, double? RelL1OutlierK, double? CosineOutlierK, double? EndToEndHostMs = null,
    double? EndToEndStreamMs = null)
{
    /// <summary>Throughput of the end-to-end call (<see cref="BenchMath.Tops"/>).</summary>
    public double EndToEndTops => BenchMath.Tops(Batch, Heads, N, HeadDim, Causal, EndToEndMs);

    /// <summary>Throughput of back-to-back end-to-end calls, when measured.</summary>
    public double? EndToEndStreamTops => EndToEndStreamMs is { } ms ? BenchMath.Tops(Batch, Heads, N, HeadDim, Causal, ms) : null;

    /// <summary>Throughput of the attention kernel alone, when measured.</summary>
    public double? KernelTops => KernelMs is { } ms ? BenchMath.Tops(Batch, Heads, N, HeadDim, Causal, ms) : null;

    /// <summary>"fp16" or "bf16".</summary>
    public string DTypeName => DType == BenchDType.Float16 ? "fp16" : "bf16";
}
