namespace SageAttn.Kernels.Host;

/// <summary>Which part of the Sage pipeline a driver-path call enqueues (benchmarks time them apart).</summary>
[Flags]
public enum PipelineStages
{
    /// <summary>Channel statistics and quantization of Q, K and V into the scratch buffers.</summary>
    Quantize = 1,
    /// <summary>The LSE correction (when asked for) and the attention kernel, reading the scratch buffers as they are.</summary>
    Attend = 2,
    /// <summary>Everything: what <c>sageattn</c> runs.</summary>
    All = Quantize | Attend,
}
