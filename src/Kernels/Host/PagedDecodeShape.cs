using SageAttn.Kernels.Attention;

namespace SageAttn.Kernels.Host;

/// <summary>
/// The sizes of one paged decode call, validated: B requests of one query token each, Hq query heads,
/// a cache of NumBlocks blocks [Hkv, BlockSize, D], block tables [B, MaxBlocksPerSeq].
/// </summary>
public sealed record PagedDecodeShape
{
    /// <summary>Head dimensions the kernel is compiled for.</summary>
    public static IReadOnlyList<int> SupportedHeadDims { get; } = [64, 128];

    private PagedDecodeShape(int batch, int headsQ, int headsKv, int headDim, int numBlocks, int blockSize, int maxBlocksPerSeq, int maxSeqLen)
    {
        Batch = batch; HeadsQ = headsQ; HeadsKv = headsKv; HeadDim = headDim;
        NumBlocks = numBlocks; BlockSize = blockSize; MaxBlocksPerSeq = maxBlocksPerSeq; MaxSeqLen = maxSeqLen;
    }

    /// <summary>B: requests (one query token each).</summary>
    public int Batch { get; }
    /// <summary>Hq: query heads.</summary>
    public int HeadsQ { get; }
    /// <summary>Hkv: key/value heads; Hq / Hkv is the GQA group.</summary>
    public int HeadsKv { get; }
    /// <summary>D: 64 or 128.</summary>
    public int HeadDim { get; }
    /// <summary>Physical blocks in the cache.</summary>
    public int NumBlocks { get; }
    /// <summary>Tokens per cache block (a multiple of 16: 16, 32, 64, ...).</summary>
    public int BlockSize { get; }
    /// <summary>Columns of the block table.</summary>
    public int MaxBlocksPerSeq { get; }
    /// <summary>The largest seq_len of the batch (host-known); seq_lens above it are clamped to it.</summary>
    public int MaxSeqLen { get; }
    /// <summary>Query heads per kv head.</summary>
    public int Group => HeadsQ / HeadsKv;
    /// <summary>Elements of one cache tensor.</summary>
    public long CacheElements => (long)NumBlocks * HeadsKv * BlockSize * HeadDim;

    /// <summary>
    /// Checks that buffers of these lengths (in elements) hold the call's tensors: q and the output [B, Hq, D] through
    /// their batch and head strides, the caches, block tables, seq_lens and (when <paramref name="lseLength"/> &gt; 0) the LSE.
    /// </summary>
    /// <exception cref="ArgumentException">Names the buffer that is too small or the stride that is invalid.</exception>
    public void CheckBuffers(long qLength, long qStrideBatch, long qStrideHead, long kCacheLength, long vCacheLength,
        long blockTablesLength, long seqLensLength, long outputLength, long outputStrideBatch, long outputStrideHead, long lseLength)
    {
        CheckRows(qLength, qStrideBatch, qStrideHead, "q");
        CheckRows(outputLength, outputStrideBatch, outputStrideHead, "output");
        if (kCacheLength < CacheElements)
            throw new ArgumentException($"k_cache needs {CacheElements} elements, has {kCacheLength}.", "k_cache");
        if (vCacheLength < CacheElements)
            throw new ArgumentException($"v_cache needs {CacheElements} elements, has {vCacheLength}.", "v_cache");
        if (blockTablesLength < (long)Batch * MaxBlocksPerSeq)
            throw new ArgumentException($"block_tables needs {(long)Batch * MaxBlocksPerSeq} entries, has {blockTablesLength}.", "block_tables");
        if (seqLensLength < Batch)
            throw new ArgumentException($"seq_lens needs {Batch} entries, has {seqLensLength}.", "seq_lens");
        if (lseLength > 0 && lseLength < (long)Batch * HeadsQ)
            throw new ArgumentException($"lse needs {(long)Batch * HeadsQ} floats, has {lseLength}.", "lse");
    }

    private void CheckRows(long length, long strideBatch, long strideHead, string name)
    {
        if (strideBatch < 0 || strideHead < 0)
            throw new ArgumentException($"{name} strides must be non-negative, got batch {strideBatch}, head {strideHead}.", name);
        long last = (Batch - 1) * strideBatch + (HeadsQ - 1) * strideHead + HeadDim;
        if (last > length)
            throw new ArgumentException($"{name} needs {last} elements for [{Batch}, {HeadsQ}, {HeadDim}] with its strides, has {length}.", name);
    }

    /// <summary>Checks the sizes and returns the shape.</summary>
    /// <exception cref="ArgumentException">A size is out of range or inconsistent; ParamName names the argument it came from.</exception>
    public static PagedDecodeShape Of(int batch, int headsQ, int headsKv, int headDim, int numBlocks, int blockSize,
        int maxBlocksPerSeq, int maxSeqLen)
    {
        if (batch < 1)
            throw new ArgumentException($"q needs at least one request, got batch {batch}.", "q");
        if (headsQ < 1)
            throw new ArgumentException($"q needs at least one head, got {headsQ}.", "q");
        if (headsKv < 1)
            throw new ArgumentException($"k_cache needs at least one kv head, got {headsKv}.", "k_cache");
        if (headsQ % headsKv != 0)
            throw new ArgumentException($"q has {headsQ} heads, not a multiple of the cache's {headsKv} kv heads.", "q");
        if (headsQ / headsKv > PagedDecodeKernel.MaxGroup)
            throw new ArgumentException(
                $"GQA group {headsQ / headsKv} (q heads / kv heads) exceeds {PagedDecodeKernel.MaxGroup}, the rows of one mma tile.", "q");
        if (!SupportedHeadDims.Contains(headDim))
            throw new ArgumentException($"head_dim must be 64 or 128 for paged decode, got {headDim}.", "q");
        if (numBlocks < 1)
            throw new ArgumentException($"k_cache needs at least one block, got {numBlocks}.", "k_cache");
        if (blockSize < PagedDecodeKernel.TileKeys || blockSize % PagedDecodeKernel.TileKeys != 0)
            throw new ArgumentException(
                $"block_size must be a positive multiple of {PagedDecodeKernel.TileKeys} (16, 32, 64, ...), got {blockSize}.", "k_cache");
        if (maxBlocksPerSeq < 1)
            throw new ArgumentException($"block_tables needs at least one column, got {maxBlocksPerSeq}.", "block_tables");
        if (maxSeqLen < 0)
            throw new ArgumentException($"max_seq_len must be ≥ 0, got {maxSeqLen}.", "max_seq_len");
        if ((long)maxSeqLen > (long)maxBlocksPerSeq * blockSize)
            throw new ArgumentException(
                $"max_seq_len {maxSeqLen} exceeds what a block-table row can address ({maxBlocksPerSeq} blocks × {blockSize}).", "max_seq_len");
        return new PagedDecodeShape(batch, headsQ, headsKv, headDim, numBlocks, blockSize, maxBlocksPerSeq, maxSeqLen);
    }
}

/// <summary>How a decode call splits the keys: <see cref="Splits"/> ranges of <see cref="KeysPerSplit"/> keys.</summary>
/// <param name="Splits">Grid x; 1 = no split (the kernel writes O directly, no merge).</param>
/// <param name="KeysPerSplit">A multiple of <see cref="PagedDecodeKernel.KeysPerStep"/>.</param>
public readonly record struct PagedDecodeSplit(int Splits, int KeysPerSplit)
{
    /// <summary>
    /// Enough thread blocks to fill the device about <see cref="WavesPerDevice"/> times, but never a split shorter than
    /// <see cref="MinKeysPerSplit"/> keys (below that the merge costs more than the parallelism gains).
    /// </summary>
    public const int WavesPerDevice = 2;

    /// <summary>The shortest split the automatic choice makes.</summary>
    public const int MinKeysPerSplit = 256;

    /// <summary>Upper bound on splits (bounds the scratch of the partial states).</summary>
    public const int MaxSplits = 128;

    /// <summary>
    /// Picks the split for a shape on a device with <paramref name="multiprocessors"/> SMs, or honors
    /// <paramref name="forcedSplits"/> (tests; clamped so no split is empty by construction).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="forcedSplits"/> is not positive.</exception>
    public static PagedDecodeSplit Choose(PagedDecodeShape shape, int multiprocessors, int? forcedSplits = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        int step = PagedDecodeKernel.KeysPerStep;
        int steps = Math.Max(1, (shape.MaxSeqLen + step - 1) / step);
        int splits;
        if (forcedSplits is int forced)
        {
            if (forced < 1)
                throw new ArgumentException($"splits must be ≥ 1, got {forced}.", nameof(forcedSplits));
            splits = forced;
        }
        else
        {
            long blocks = (long)shape.Batch * shape.HeadsKv;
            long wanted = (Math.Max(1, multiprocessors) * (long)WavesPerDevice + blocks - 1) / blocks;
            long byLength = Math.Max(1, shape.MaxSeqLen / MinKeysPerSplit);
            splits = (int)Math.Min(Math.Min(wanted, byLength), MaxSplits);
        }
        splits = Math.Clamp(splits, 1, steps);
        int keysPerSplit = (steps + splits - 1) / splits * step;
        splits = Math.Max(1, (Math.Max(shape.MaxSeqLen, 1) + keysPerSplit - 1) / keysPerSplit);
        return new PagedDecodeSplit(splits, keysPerSplit);
    }
}
