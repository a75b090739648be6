namespace SageAttn.Models.Generation;

/// <summary>What <see cref="GenerationEngine.Decode"/> produced.</summary>
/// <param name="Tokens">Per request, the greedy token of each step [request][step].</param>
/// <param name="Logits">Per step and request, the float32 logits that chose the token [step][request][vocab], or null when not kept.</param>
/// <param name="Steps">Decode steps run.</param>
/// <param name="Milliseconds">Wall time of all steps, device synchronized before and after.</param>
/// <param name="AttentionMilliseconds">Time inside the attention backend (synchronized per call), when measured; else null.</param>
public sealed record DecodeResult(int[][] Tokens, float[][][]? Logits, int Steps, double Milliseconds, double? AttentionMilliseconds)
{
    /// <summary>Generated tokens per second over all requests (requests × steps / wall time).</summary>
    public double TokensPerSecond => Milliseconds > 0 ? Tokens.Length * (double)Steps / (Milliseconds / 1000) : 0;
}
