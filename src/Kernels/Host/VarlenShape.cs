using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>
/// The validated sizes of one packed (varlen) attention call: B sequences whose queries are packed in
/// Q [Tq, Hq, D] and whose keys and values are packed in K, V [Tk, Hkv, D], delimited by cu_seqlens on the device.
/// </summary>
/// <remarks>
/// Only what the host knows is checked here: the sizes and the promised maxima. The grid is sized by
/// max_seqlen (clamped to the totals); the quantized tensors hold each sequence padded to 64 rows
/// (<see cref="PackedSequences"/>), so their sizes depend on Tq, Tk and B only.
/// </remarks>
public sealed record VarlenShape
{
    /// <summary>B, the number of sequences (cu_seqlens has B + 1 entries).</summary>
    public int Batch { get; }
    public int HeadsQ { get; }
    public int HeadsKv { get; }
    /// <summary>Tq, all sequences' query tokens.</summary>
    public int TotalQ { get; }
    /// <summary>Tk, all sequences' key tokens (cached prefixes included).</summary>
    public int TotalK { get; }
    /// <summary>The longest sequence's query count the grid covers: max_seqlen_q, at most Tq.</summary>
    public int MaxQ { get; }
    /// <summary>The longest sequence's key count: max_seqlen_k, at most Tk.</summary>
    public int MaxK { get; }
    public int HeadDim { get; }
    public int PaddedHeadDim => SageConstants.PaddedHeadDim(HeadDim);
    /// <summary>Rows per head of the padded quantized Q: roundup64(Tq) + 64·B.</summary>
    public int QRows => (int)PackedSequences.PaddedRows(TotalQ, Batch);
    /// <summary>Rows per head of the padded quantized K and columns of the transposed V.</summary>
    public int KRows => (int)PackedSequences.PaddedRows(TotalK, Batch);
    /// <summary>Q tiles per sequence in the grid.</summary>
    public int QTiles => (MaxQ + SageConstants.QTileRows - 1) / SageConstants.QTileRows;
    /// <summary>K blocks per sequence in the quantizers' grid.</summary>
    public int KBlocks => (MaxK + SageConstants.KBlockKeys - 1) / SageConstants.KBlockKeys;
    /// <summary>Chunks of the channel statistics per sequence.</summary>
    public int KStatsChunks => (MaxK + SageConstants.StatsChunkTokens - 1) / SageConstants.StatsChunkTokens;

    /// <summary>Checks the sizes; the parameter names are those of <c>sageattn_varlen</c>.</summary>
    /// <exception cref="ArgumentException">A size is out of range or the maxima cannot cover the totals, naming the argument.</exception>
    public VarlenShape(int batch, int headsQ, int headsKv, int totalQ, int totalK, int maxQ, int maxK, int headDim)
    {
        if (batch <= 0) throw new ArgumentException($"cu_seqlens_q must hold B + 1 ≥ 2 offsets (B = {batch}).", "cu_seqlens_q");
        if (headsQ <= 0) throw new ArgumentException($"query heads must be positive, got {headsQ}.", "q");
        if (headsKv <= 0) throw new ArgumentException($"key/value heads must be positive, got {headsKv}.", "k");
        if (headsQ % headsKv != 0)
            throw new ArgumentException($"query heads ({headsQ}) must be a multiple of key/value heads ({headsKv}) for grouped-query attention.", "k");
        if (totalQ <= 0) throw new ArgumentException($"q must hold at least one token, got {totalQ}.", "q");
        if (totalK <= 0) throw new ArgumentException($"k must hold at least one token, got {totalK}.", "k");
        if (headDim <= 0 || headDim > 128)
            throw new ArgumentException($"head_dim must be in 1..128 (64 and 128 run natively, others are zero-padded), got {headDim}.", "q");
        if (maxQ <= 0 || (long)maxQ * batch < totalQ)
            throw new ArgumentException($"max_seqlen_q = {maxQ} is too small: {batch} sequences of at most that many queries cannot hold Tq = {totalQ}.", "max_seqlen_q");
        if (maxK <= 0 || (long)maxK * batch < totalK)
            throw new ArgumentException($"max_seqlen_k = {maxK} is too small: {batch} sequences of at most that many keys cannot hold Tk = {totalK}.", "max_seqlen_k");
        Batch = batch; HeadsQ = headsQ; HeadsKv = headsKv; TotalQ = totalQ; TotalK = totalK;
        MaxQ = Math.Min(maxQ, totalQ); MaxK = Math.Min(maxK, totalK); HeadDim = headDim;
        // Quantized tensors are indexed with 32-bit element counts inside a head and 64-bit across heads.
        if (PackedSequences.PaddedRows(totalQ, batch) * PaddedHeadDim > int.MaxValue)
            throw new ArgumentException("q is too long: one head's padded quantized tensor would exceed 2^31 elements.", "q");
        if (PackedSequences.PaddedRows(totalK, batch) * PaddedHeadDim > int.MaxValue)
            throw new ArgumentException("k is too long: one head's padded quantized tensor would exceed 2^31 elements.", "k");
    }

    /// <summary>
    /// Element counts of the quantized tensors: Q, K, V and their scales as one packed batch entry of
    /// <see cref="QRows"/> / <see cref="KRows"/> rows; V scales, V means and statistics per sequence [B, Hkv, ...];
    /// LSE rows [Hq, Tq].
    /// </summary>
    public QuantizedLayout Layout(SageAttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        int dp = PaddedHeadDim;
        long kvHeads = (long)Batch * HeadsKv;
        int elementsPerWord = options.VFormat == VFormat.Fp16 ? 2 : 4;
        return new QuantizedLayout(
            QBytes: (long)HeadsQ * QRows * dp,
            QScales: (long)HeadsQ * (QRows / SageConstants.QTileRows) * SageConstants.QScaleSlotsPerTile,
            KBytes: (long)HeadsKv * KRows * dp,
            KScales: (long)HeadsKv * (KRows / SageConstants.KBlockKeys) * SageConstants.KScaleSlotsPerBlock,
            VWords: (long)HeadsKv * dp * KRows / elementsPerWord,
            VScales: kvHeads * dp,
            VMeans: kvHeads * dp,
            KStats: kvHeads * KStatsChunks * 3 * dp,
            VStats: kvHeads * KStatsChunks * 3 * dp,
            LseRows: (long)HeadsQ * TotalQ,
            // Packed batches quantize with the two-launch (or five-launch) path, which needs no coordination; one int keeps the buffer non-empty.
            Coordination: 1);
    }
}
