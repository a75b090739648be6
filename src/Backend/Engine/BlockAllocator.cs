namespace SageAttn.Backend.Engine;

/// <summary>
/// Hands out the KV-cache blocks of a fixed pool to requests as they grow and takes them back when a request
/// ends: each request owns an ordered list of block ids (its block-table row), one block per BlockSize tokens.
/// </summary>
/// <remarks>
/// Host-only bookkeeping (no tensors). Free blocks are handed out lowest id first so a run is reproducible.
/// Growing is all-or-nothing: when the pool cannot cover the new length nothing is taken, so the engine can
/// preempt a request and retry. Not thread-safe: the scheduler owns it.
/// </remarks>
public sealed class BlockAllocator
{
    private readonly SortedSet<int> _free;
    private readonly Dictionary<int, List<int>> _tables = [];
    private readonly Dictionary<int, int> _lengths = [];

    /// <summary>A pool of <paramref name="numBlocks"/> blocks of <paramref name="blockSize"/> tokens, all free.</summary>
    /// <exception cref="ArgumentException">A count is not positive.</exception>
    public BlockAllocator(int numBlocks, int blockSize)
    {
        if (numBlocks <= 0)
            throw new ArgumentException($"numBlocks must be positive, got {numBlocks}.", nameof(numBlocks));
        if (blockSize <= 0)
            throw new ArgumentException($"blockSize must be positive, got {blockSize}.", nameof(blockSize));
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        _free = new SortedSet<int>(Enumerable.Range(0, numBlocks));
    }

    /// <summary>Blocks in the pool.</summary>
    public int NumBlocks { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks no request owns.</summary>
    public int FreeBlocks => _free.Count;

    /// <summary>Requests that own blocks.</summary>
    public IReadOnlyCollection<int> Requests => _tables.Keys;

    /// <summary>Blocks needed to hold <paramref name="tokens"/> tokens.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>True when the request owns blocks.</summary>
    public bool Contains(int requestId) => _tables.ContainsKey(requestId);

    /// <summary>Tokens the request's blocks were reserved for (0 for an unknown request).</summary>
    public int Length(int requestId) => _lengths.GetValueOrDefault(requestId);

    /// <summary>The request's block ids in token order (block j holds tokens j·BlockSize .. (j + 1)·BlockSize − 1).</summary>
    /// <exception cref="ArgumentException">The request owns no blocks.</exception>
    public IReadOnlyList<int> BlockTable(int requestId) =>
        _tables.TryGetValue(requestId, out var table)
            ? table
            : throw new ArgumentException($"request {requestId} owns no KV-cache blocks.", nameof(requestId));

    /// <summary>True when the pool can grow the request to <paramref name="tokens"/> tokens.</summary>
    public bool CanReserve(int requestId, int tokens) =>
        BlocksFor(tokens) - (_tables.TryGetValue(requestId, out var t) ? t.Count : 0) <= _free.Count;

    /// <summary>
    /// Grows the request's blocks to hold <paramref name="tokens"/> tokens (a new request gets its first blocks);
    /// never shrinks.
    /// </summary>
    /// <returns>The request's block table.</returns>
    /// <exception cref="ArgumentException"><paramref name="tokens"/> is negative.</exception>
    /// <exception cref="InvalidOperationException">The pool has too few free blocks; nothing was allocated.</exception>
    public IReadOnlyList<int> Reserve(int requestId, int tokens)
    {
        if (tokens < 0)
            throw new ArgumentException($"tokens must not be negative, got {tokens}.", nameof(tokens));
        if (!_tables.TryGetValue(requestId, out var table))
            table = [];
        int missing = BlocksFor(tokens) - table.Count;
        if (missing > _free.Count)
            throw new InvalidOperationException(
                $"KV cache exhausted: request {requestId} needs {missing} more block(s) of {BlockSize} tokens to hold {tokens} tokens, " +
                $"but only {_free.Count} of {NumBlocks} are free. Free finished requests or allocate a larger cache.");
        for (int i = 0; i < missing; i++)
        {
            int block = _free.Min;
            _free.Remove(block);
            table.Add(block);
        }

        _tables[requestId] = table;
        _lengths[requestId] = Math.Max(tokens, _lengths.GetValueOrDefault(requestId));
        return table;
    }

    /// <summary>Returns the request's blocks to the pool; an unknown request is ignored (freeing twice is harmless).</summary>
    public void Free(int requestId)
    {
        if (!_tables.Remove(requestId, out var table))
            return;
        _lengths.Remove(requestId);
        foreach (int block in table)
            _free.Add(block);
    }
}
