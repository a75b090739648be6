using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// Per-step data of <see cref="SdpaAttentionBackend"/>: the cache rows of every request's keys (one gather per layer
/// reads them all) and the causal masks of prefills that follow a cached prefix.
/// </summary>
public sealed class SdpaAttentionMetadata : PagedAttentionMetadata
{
    /// <summary>Builds the step's data on the cache's device.</summary>
    public SdpaAttentionMetadata(ForwardMeta meta) : base(meta)
    {
        KeyRows = torch.tensor(KeyRowsOf(meta, Enumerable.Range(0, meta.BatchSize).ToArray()), ScalarType.Int64, meta.Cache.Device);
        var masks = new Tensor?[meta.BatchSize];
        for (int b = 0; b < meta.BatchSize; b++)
        {
            var r = meta.Requests[b];
            // torch's is_causal aligns top-left; after a prefix the diagonal moves right by CachedTokens, so a
            // prefill chunk needs its own mask (key j visible to query i iff j ≤ i + cached). A decode sees everything.
            if (r.CachedTokens > 0 && r.NewTokens > 1)
            {
                using var scope = torch.NewDisposeScope();
                var i = torch.arange(r.NewTokens, ScalarType.Int64, meta.Cache.Device).unsqueeze(1);
                var j = torch.arange(r.TotalTokens, ScalarType.Int64, meta.Cache.Device).unsqueeze(0);
                masks[b] = (j <= (i + r.CachedTokens)).DetachFromDisposeScope();
            }
        }

        PrefixMasks = masks;
    }

    /// <summary>Int64 [Σ (cached + new)·Hkv]: cache rows of all keys of all requests, request after request (<see cref="ForwardMeta.KeyStarts"/> splits them).</summary>
    public Tensor KeyRows { get; }

    /// <summary>Per request: a Boolean [NewTokens, TotalTokens] mask (true = attend) for a prefill after a cached prefix, else null.</summary>
    public IReadOnlyList<Tensor?> PrefixMasks { get; }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            KeyRows.Dispose();
            foreach (var mask in PrefixMasks)
                mask?.Dispose();
        }

        base.Dispose(disposing);
    }
}
