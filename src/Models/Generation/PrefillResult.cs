namespace SageAttn.Models.Generation;

/// <summary>What <see cref="GenerationEngine.Prefill"/> produced.</summary>
/// <param name="NextTokens">Per request, the greedy token after its prompt.</param>
/// <param name="Logits">Per request, the float32 logits of its last prompt token [vocab], or null when not kept.</param>
/// <param name="Tokens">Prompt tokens computed (all requests).</param>
/// <param name="Milliseconds">Wall time of the step, device synchronized before and after.</param>
/// <param name="AttentionMilliseconds">Time inside the attention backend (synchronized per call), when measured; else null.</param>
public sealed record PrefillResult(int[] NextTokens, float[][]? Logits, int Tokens, double Milliseconds, double? AttentionMilliseconds);
