namespace SageAttn.Backend.SequenceParallel;

/// <summary>
/// How one attention over N tokens is split across P partitions (GPUs, or chunks of one device): the token
/// chunks, which partition owns each chunk's queries and keys/values, and which (query chunk, key chunk) pairs
/// each ring step computes.
/// </summary>
/// <remarks>
/// <para>Non-causal: P chunks, partition p owns chunk p. Causal: 2P chunks in a zigzag, partition p owns chunks p and
/// 2P − 1 − p, so every partition gets one early and one late query chunk and the same number of visible
/// (query, key) pairs — without it the last partition would do P times the work of the first.</para>
/// <para>Ring step r: partition p holds the keys/values of partition (p + r) mod P (received from its neighbour)
/// and attends each of its query chunks to them. Causal pairs with the key chunk after the query chunk are skipped
/// (fully masked); the diagonal pair is causal within the chunk; earlier key chunks are fully visible.</para>
/// </remarks>
public sealed class SequencePartition
{
    private readonly int[][] _ownedChunks;

    private SequencePartition(int tokens, int partitions, bool causal, int[] starts, int[][] ownedChunks)
    {
        Tokens = tokens;
        Partitions = partitions;
        Causal = causal;
        ChunkStarts = starts;
        _ownedChunks = ownedChunks;
    }

    /// <summary>Total tokens N.</summary>
    public int Tokens { get; }

    /// <summary>Number of partitions P.</summary>
    public int Partitions { get; }

    /// <summary>Whether the attention is causal (zigzag chunks).</summary>
    public bool Causal { get; }

    /// <summary>Chunk start offsets plus a final N: chunk c covers [ChunkStarts[c], ChunkStarts[c + 1]).</summary>
    public IReadOnlyList<int> ChunkStarts { get; }

    /// <summary>Number of chunks (P, or 2P when causal).</summary>
    public int Chunks => ChunkStarts.Count - 1;

    /// <summary>Plans the split of <paramref name="tokens"/> tokens into <paramref name="partitions"/> partitions.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than one partition, or more chunks than tokens.</exception>
    public static SequencePartition Create(int tokens, int partitions, bool causal)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        int chunks = causal ? 2 * partitions : partitions;
        if (tokens < chunks)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens,
                $"{tokens} tokens cannot be split into {chunks} chunks ({partitions} partitions{(causal ? ", causal zigzag" : "")}).");
        var starts = new int[chunks + 1];
        for (int c = 0; c <= chunks; c++)
            starts[c] = (int)((long)tokens * c / chunks);
        var owned = new int[partitions][];
        for (int p = 0; p < partitions; p++)
            owned[p] = causal ? [p, 2 * partitions - 1 - p] : [p];
        return new SequencePartition(tokens, partitions, causal, starts, owned);
    }

    /// <summary>The chunks whose queries and keys/values partition <paramref name="partition"/> owns, in token order.</summary>
    public IReadOnlyList<int> OwnedChunks(int partition) => _ownedChunks[partition];

    /// <summary>Length of chunk <paramref name="chunk"/>.</summary>
    public int ChunkLength(int chunk) => ChunkStarts[chunk + 1] - ChunkStarts[chunk];

    /// <summary>Which partition's keys/values partition <paramref name="partition"/> holds at ring step <paramref name="step"/>.</summary>
    public int KeySourceAt(int partition, int step) => (partition + step) % Partitions;

    /// <summary>How query chunk <paramref name="queryChunk"/> sees key chunk <paramref name="keyChunk"/>.</summary>
    public ChunkVisibility Visibility(int queryChunk, int keyChunk) =>
        !Causal || keyChunk < queryChunk ? ChunkVisibility.Full
        : keyChunk == queryChunk ? ChunkVisibility.Diagonal
        : ChunkVisibility.None;
}

/// <summary>What part of a key chunk a query chunk attends to.</summary>
public enum ChunkVisibility
{
    /// <summary>Fully masked: the pair is skipped.</summary>
    None,

    /// <summary>The same chunk: causal within it (query i sees keys ≤ i).</summary>
    Diagonal,

    /// <summary>Every key visible.</summary>
    Full,
}
