using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// Everything about one engine step that every layer shares: which requests run, their host-known lengths, the
/// packed-token bookkeeping on the device, the cache and rotary tables, and the backend's own per-step data
/// (<see cref="AttentionMetadata"/>). Built once per step with <see cref="Create"/>; dispose it after the step.
/// </summary>
/// <remarks>
/// <para>The step's tokens are packed request after request in the order of <see cref="Requests"/>: request b owns
/// rows <see cref="QueryStarts"/>[b] .. QueryStarts[b + 1] − 1 of qkv, at positions CachedTokens .. CachedTokens + NewTokens − 1.</para>
/// <para>Names follow FastDeploy's forward_meta: seq_lens_encoder (new tokens of a prefill, 0 for a decode),
/// seq_lens_decoder (tokens already cached), seq_lens_this_time (new tokens).</para>
/// <para><see cref="Create"/> grows each request's blocks in the cache to cover its new tokens, so the engine only
/// frees finished requests.</para>
/// </remarks>
public sealed class ForwardMeta : IDisposable
{
    private readonly IReadOnlyList<int>[] _blockTables;

    private ForwardMeta(RequestSlot[] requests, PagedKvCache cache, RotaryTable rope, IReadOnlyList<int>[] blockTables)
    {
        Requests = requests;
        Cache = cache;
        Rope = rope;
        _blockTables = blockTables;
        int batch = requests.Length;
        SeqLensEncoder = requests.Select(r => r.IsDecode ? 0 : r.NewTokens).ToArray();
        SeqLensDecoder = requests.Select(r => r.CachedTokens).ToArray();
        SeqLensThisTime = requests.Select(r => r.NewTokens).ToArray();
        QueryStarts = new int[batch + 1];
        KeyStarts = new int[batch + 1];
        for (int b = 0; b < batch; b++)
        {
            QueryStarts[b + 1] = checked(QueryStarts[b] + requests[b].NewTokens);
            KeyStarts[b + 1] = checked(KeyStarts[b] + requests[b].TotalTokens);
        }

        TotalTokens = QueryStarts[batch];
        MaxSeqLenQ = requests.Max(r => r.NewTokens);
        MaxSeqLenK = requests.Max(r => r.TotalTokens);
        MaxBlocksPerRequest = blockTables.Max(t => t.Count);

        var batchIds = new int[TotalTokens];
        var positions = new long[TotalTokens];
        for (int b = 0; b < batch; b++)
        for (int i = 0; i < requests[b].NewTokens; i++)
        {
            batchIds[QueryStarts[b] + i] = b;
            positions[QueryStarts[b] + i] = requests[b].CachedTokens + i;
        }

        // Rows padded with −1 (FastDeploy's convention): a kernel must never read past a request's own blocks.
        var table = new int[batch * MaxBlocksPerRequest];
        Array.Fill(table, -1);
        for (int b = 0; b < batch; b++)
        for (int j = 0; j < blockTables[b].Count; j++)
            table[b * MaxBlocksPerRequest + j] = blockTables[b][j];

        var device = cache.Device;
        CuSeqLensQ = torch.tensor(QueryStarts, ScalarType.Int32, device);
        CuSeqLensK = torch.tensor(KeyStarts, ScalarType.Int32, device);
        BatchIdPerToken = torch.tensor(batchIds, ScalarType.Int32, device);
        Positions = torch.tensor(positions, ScalarType.Int64, device);
        using var tableHost = torch.tensor(table, [batch, MaxBlocksPerRequest], ScalarType.Int32);
        BlockTables = tableHost.to(device);
    }

    /// <summary>
    /// The step of <paramref name="requests"/> (in batch order) over <paramref name="cache"/>, RoPE from
    /// <paramref name="rope"/>: reserves cache blocks for the new tokens and builds the device tensors.
    /// </summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">
    /// No requests, a request id twice, a negative cached or non-positive new token count, a request claiming more
    /// cached tokens than the cache holds for it, a position past the rotary table, or a rotary table whose head
    /// dim or device differs from the cache's.
    /// </exception>
    /// <exception cref="InvalidOperationException">The cache has too few free blocks (nothing is reserved then).</exception>
    public static ForwardMeta Create(IReadOnlyList<RequestSlot> requests, PagedKvCache cache, RotaryTable rope)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(rope);
        if (requests.Count == 0)
            throw new ArgumentException("a step needs at least one request.", nameof(requests));
        if (rope.HeadDim != cache.Shape.HeadDim)
            throw new ArgumentException($"the rotary table is for head dim {rope.HeadDim} but the cache's is {cache.Shape.HeadDim}.", nameof(rope));
        if (rope.Device.type != cache.Device.type || rope.Device.index != cache.Device.index)
            throw new ArgumentException($"the rotary table is on {rope.Device} but the cache is on {cache.Device}.", nameof(rope));

        var slots = requests.ToArray();
        var seen = new HashSet<int>();
        int extraBlocks = 0;
        foreach (var r in slots)
        {
            if (!seen.Add(r.RequestId))
                throw new ArgumentException($"request {r.RequestId} appears twice in one step.", nameof(requests));
            if (r.CachedTokens < 0 || r.NewTokens <= 0)
                throw new ArgumentException(
                    $"request {r.RequestId}: CachedTokens must be ≥ 0 and NewTokens ≥ 1, got {r.CachedTokens} and {r.NewTokens}.", nameof(requests));
            if (r.CachedTokens > cache.Allocator.Length(r.RequestId))
                throw new ArgumentException(
                    $"request {r.RequestId} claims {r.CachedTokens} cached tokens but the cache holds {cache.Allocator.Length(r.RequestId)} for it.", nameof(requests));
            if ((long)r.CachedTokens + r.NewTokens > rope.MaxPositions)
                throw new ArgumentException(
                    $"request {r.RequestId} reaches position {(long)r.CachedTokens + r.NewTokens - 1}, past the rotary table's {rope.MaxPositions} positions.", nameof(requests));
            extraBlocks += Math.Max(0, cache.Allocator.BlocksFor(r.TotalTokens) - (cache.Allocator.Contains(r.RequestId) ? cache.BlockTable(r.RequestId).Count : 0));
        }

        // All or nothing: check the whole step fits before growing any request.
        if (extraBlocks > cache.Allocator.FreeBlocks)
            throw new InvalidOperationException(
                $"KV cache exhausted: this step needs {extraBlocks} more block(s) of {cache.BlockSize} tokens but only " +
                $"{cache.Allocator.FreeBlocks} of {cache.Allocator.NumBlocks} are free. Free finished requests or allocate a larger cache.");
        var tables = slots.Select(r => cache.Reserve(r.RequestId, r.TotalTokens)).ToArray();
        return new ForwardMeta(slots, cache, rope, tables);
    }

    /// <summary>The step's requests in batch order.</summary>
    public IReadOnlyList<RequestSlot> Requests { get; }

    /// <summary>The paged cache the step reads and writes.</summary>
    public PagedKvCache Cache { get; }

    /// <summary>The rotary tables RoPE reads.</summary>
    public RotaryTable Rope { get; }

    /// <summary>Requests in the step (B).</summary>
    public int BatchSize => Requests.Count;

    /// <summary>Tokens of the step (T, the rows of qkv).</summary>
    public int TotalTokens { get; }

    /// <summary>Most new tokens of one request.</summary>
    public int MaxSeqLenQ { get; }

    /// <summary>Most keys (cached + new) of one request.</summary>
    public int MaxSeqLenK { get; }

    /// <summary>Columns of <see cref="BlockTables"/>: the most blocks one request of the step owns.</summary>
    public int MaxBlocksPerRequest { get; }

    /// <summary>Per request: new tokens of a prefill, 0 for a decode (FastDeploy's seq_lens_encoder).</summary>
    public int[] SeqLensEncoder { get; }

    /// <summary>Per request: tokens already in the cache (seq_lens_decoder).</summary>
    public int[] SeqLensDecoder { get; }

    /// <summary>Per request: tokens computed this step (seq_lens_this_time).</summary>
    public int[] SeqLensThisTime { get; }

    /// <summary>Host copy of <see cref="CuSeqLensQ"/>: request b's tokens are rows QueryStarts[b] .. QueryStarts[b + 1] − 1.</summary>
    public int[] QueryStarts { get; }

    /// <summary>Host copy of <see cref="CuSeqLensK"/>: prefix sums of cached + new tokens.</summary>
    public int[] KeyStarts { get; }

    /// <summary>Int32 [B + 1] on the cache's device: prefix sums of new tokens (cu_seqlens_q).</summary>
    public Tensor CuSeqLensQ { get; }

    /// <summary>Int32 [B + 1]: prefix sums of cached + new tokens (cu_seqlens_k).</summary>
    public Tensor CuSeqLensK { get; }

    /// <summary>Int32 [T]: the batch index of each token.</summary>
    public Tensor BatchIdPerToken { get; }

    /// <summary>Int64 [T]: each token's position in its request (cached tokens + index in this step).</summary>
    public Tensor Positions { get; }

    /// <summary>Int32 [B, MaxBlocksPerRequest]: each request's block ids in token order, padded with −1.</summary>
    public Tensor BlockTables { get; }

    /// <summary>The block ids of the request at batch index <paramref name="batchIndex"/> (host copy of a <see cref="BlockTables"/> row, unpadded).</summary>
    public IReadOnlyList<int> BlockTableOf(int batchIndex) => _blockTables[batchIndex];

    /// <summary>What the backend's <see cref="AttentionBackend.InitAttentionMetadata"/> built for this step; disposed with the meta when disposable.</summary>
    public object? AttentionMetadata { get; set; }

    /// <summary>Releases the step's device tensors and the attention metadata.</summary>
    public void Dispose()
    {
        CuSeqLensQ.Dispose();
        CuSeqLensK.Dispose();
        BatchIdPerToken.Dispose();
        Positions.Dispose();
        BlockTables.Dispose();
        (AttentionMetadata as IDisposable)?.Dispose();
        AttentionMetadata = null;
    }
}
