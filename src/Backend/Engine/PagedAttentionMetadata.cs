using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// The per-step data every paged backend needs, built once in InitAttentionMetadata so the layers only index:
/// the cache slot of each new token, the cache rows to write, and the rotary rows at the tokens' positions.
/// </summary>
/// <remarks>Backends derive from it to add their own per-step tensors. Disposed with the <see cref="ForwardMeta"/>.</remarks>
public class PagedAttentionMetadata : IDisposable
{
    /// <summary>Builds the shared per-step data of <paramref name="meta"/> on the cache's device.</summary>
    public PagedAttentionMetadata(ForwardMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        var cache = meta.Cache;
        var slots = new long[meta.TotalTokens];
        for (int b = 0; b < meta.BatchSize; b++)
        {
            var request = meta.Requests[b];
            var table = meta.BlockTableOf(b);
            for (int i = 0; i < request.NewTokens; i++)
                slots[meta.QueryStarts[b] + i] = cache.Slot(table, request.CachedTokens + i);
        }

        SlotMappingHost = slots;
        SlotMapping = torch.tensor(slots, ScalarType.Int64, cache.Device);
        CacheRows = torch.tensor(cache.RowIndices(slots), ScalarType.Int64, cache.Device);
        (RopeCos, RopeSin) = meta.Rope.Gather(meta.Positions);
    }

    /// <summary>Host copy of <see cref="SlotMapping"/>.</summary>
    public long[] SlotMappingHost { get; }

    /// <summary>Int64 [T]: each new token's cache slot, block · BlockSize + offset (vLLM's slot_mapping).</summary>
    public Tensor SlotMapping { get; }

    /// <summary>Int64 [T·Hkv]: rows of the flat cache view the new keys and values go to (<see cref="PagedKvCache.RowIndices"/>).</summary>
    public Tensor CacheRows { get; }

    /// <summary>Float32 [T, D/2]: cos of each new token's rotary angles.</summary>
    public Tensor RopeCos { get; }

    /// <summary>Float32 [T, D/2]: sin of each new token's rotary angles.</summary>
    public Tensor RopeSin { get; }

    /// <summary>
    /// Cache rows of every key (cached and new, positions 0 .. TotalTokens − 1) of the requests at
    /// <paramref name="batchIndices"/>, request after request: gathering them gives those requests' keys packed
    /// as [Σ TotalTokens, Hkv, D].
    /// </summary>
    protected static long[] KeyRowsOf(ForwardMeta meta, IReadOnlyList<int> batchIndices)
    {
        ArgumentNullException.ThrowIfNull(meta);
        var cache = meta.Cache;
        var slots = new List<long>();
        foreach (int b in batchIndices)
        {
            var table = meta.BlockTableOf(b);
            for (int p = 0; p < meta.Requests[b].TotalTokens; p++)
                slots.Add(cache.Slot(table, p));
        }

        return cache.RowIndices(slots);
    }

    /// <summary>Prefix sums of <paramref name="lengths"/> (a leading 0): cu_seqlens.</summary>
    protected static int[] PrefixSums(IEnumerable<int> lengths)
    {
        var sums = new List<int> { 0 };
        foreach (int n in lengths)
            sums.Add(checked(sums[^1] + n));
        return [.. sums];
    }

    /// <summary>Releases the step's tensors.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the tensors when <paramref name="disposing"/>; derived classes add theirs.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing)
            return;
        SlotMapping.Dispose();
        CacheRows.Dispose();
        RopeCos.Dispose();
        RopeSin.Dispose();
    }
}
