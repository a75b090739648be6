namespace SageAttn.Backend.Engine;

/// <summary>One request's part of a step: its id and the host-known lengths the scheduler decided.</summary>
/// <param name="RequestId">The engine's id of the request; it names the request's blocks in the <see cref="PagedKvCache"/>.</param>
/// <param name="CachedTokens">Tokens of this request already in the KV cache (a cached prefix or earlier steps).</param>
/// <param name="NewTokens">Tokens this step computes: the prompt (or a chunk of it) for a prefill, 1 for a decode.</param>
/// <remarks>
/// A request with one new token after a cached prefix is a decode; anything else (several new tokens, or the first
/// token of a one-token prompt) is a prefill. The new tokens take positions CachedTokens .. CachedTokens + NewTokens − 1.
/// </remarks>
public readonly record struct RequestSlot(int RequestId, int CachedTokens, int NewTokens)
{
    /// <summary>Keys the request attends to in this step (cached plus new).</summary>
    public int TotalTokens => CachedTokens + NewTokens;

    /// <summary>True for a decode step (one new token after a non-empty cache).</summary>
    public bool IsDecode => NewTokens == 1 && CachedTokens > 0;
}
