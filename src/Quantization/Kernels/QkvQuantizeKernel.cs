using System.Runtime.CompilerServices;
using ILGPU;

namespace SageAttn.Quantization.Kernels;

/// <summary>Parameters of <see cref="QkvQuantizeKernel"/>: the three quantizers' outputs in their usual layouts.</summary>
public struct QkvQuantizeParams
{
    /// <summary>Q [B, Hq, Nq, D], K and V [B, Hkv, Nk, D] in fp16/bf16.</summary>
    public StridedTensor Q, K, V;
    /// <summary>INT8 Q and K (see <see cref="QuantizeInt8Params.Output"/>).</summary>
    public ArrayView<sbyte> QOut, KOut;
    /// <summary>Per-thread scale slots of Q and K.</summary>
    public ArrayView<float> QScales, KScales;
    /// <summary>Transposed V words (see <see cref="QuantizeVParams.Output"/>).</summary>
    public ArrayView<uint> VOut;
    /// <summary>Per-channel V scales and means [B, Hkv, Dp].</summary>
    public ArrayView<float> VScales, VMeans;
    /// <summary>Partial channel statistics of K and V from <see cref="KvStatsKernel"/>.</summary>
    public ArrayView<float> KStats, VStats;
    public int StatsChunks;
    public int SmoothK, SmoothV;
    public int ElementType;
    public int PaddedHeadDim;
    public int NqPad, NkPad;
    /// <summary>A <see cref="QuantGranularity"/> value.</summary>
    public int Granularity;
    /// <summary>A <see cref="VFormat"/> value.</summary>
    public int VFormat;
    /// <summary>1: V's channel statistics were computed (smoothing, or FP8 / bf16 scales); 0: not, V keeps scale 1 and no center.</summary>
    public int ReadVStats;
    /// <summary>sm_scale · log2 e, folded into the Q scales.</summary>
    public float QScaleFold;
    /// <summary>64-row K/V tiles per work item (a strip shares one channel-statistics combine).</summary>
    public int StripTiles;
    /// <summary>Strips per K/V head: ceil(NkPad / 64 / StripTiles).</summary>
    public int Strips;
    /// <summary>Bit 0, 1, 2: Q, K, V may be read with 16-byte loads (first element 16-byte aligned).</summary>
    public int VectorLoads;
    /// <summary>Packed (<see cref="QkvQuantizeKernel.RunPacked"/>): the sequences of Q and of K and V; unused when dense.</summary>
    public PackedSequences QSequences, KSequences;
    /// <summary>Packed: the number of sequences (the tensors' batch is 1); unused when dense.</summary>
    public int Sequences;
    /// <summary>Packed: Q tiles per (sequence, head) in the grid, ⌈max_seqlen_q / 64⌉; unused when dense.</summary>
    public int SequenceQTiles;
}

/// <summary>
/// Quantizes Q, K and V in one launch: INT8 Q tiles, INT8 K blocks (K smoothing) and FP8/FP16 V blocks, bit for bit
/// the outputs of <see cref="QuantizeInt8Kernel"/> (Q, K) and <see cref="QuantizeVKernel"/>.
/// </summary>
/// <remarks>
/// <para>Grid: one dimension of work items, K strips first, then V strips, then Q tiles; 128 threads. A K or V item
/// is a strip of <see cref="QkvQuantizeParams.StripTiles"/> consecutive 64-token blocks of one head: the channel
/// means and V scales are combined from the chunk statistics once per strip, not once per block (that combine reads
/// chunks × Dp floats and, with 256 blocks per head at 16K tokens, cost more L2 traffic than the tensors).
/// The long strips start first so the short Q tiles fill the tail.</para>
/// <para>Why one launch: the three passes overlap instead of draining between kernels, and every thread issues
/// all its 16-byte loads for a tile before using any (<see cref="TileSlices"/>).</para>
/// <para>Packed sequences (<see cref="RunPacked"/>): items are laid out for <see cref="QkvQuantizeParams.Sequences"/>
/// entries of the longest sequence; an item resolves its sequence from cu_seqlens on the device and exits when its tiles
/// lie past the sequence's end. It then works on the sequence narrowed to a tensor of its own (inputs from its first
/// token, outputs from its padded start), so the tile code is the dense one; statistics, V scales and means stay indexed
/// by sequence, and only the chunks holding its tokens are combined — the numbers of the separate packed quantizers.</para>
/// </remarks>
public static class QkvQuantizeKernel
{
    private const int MaxHeadDim = 128;

    /// <summary>Tiles per K/V strip: about one per 8 statistics chunks, so the combine (a chain of chunk loads)
    /// stays a small part of a strip's work; 1 for short sequences, where there is little to combine.</summary>
    public static int DefaultStripTiles(int statsChunks, int kBlocks) => Math.Clamp(statsChunks / 8, 1, Math.Max(1, kBlocks));

    /// <summary>Work items (blocks) of a launch: K strips, V strips, Q tiles.</summary>
    public static long Items(int batch, int headsQ, int headsKv, int qTiles, int strips) =>
        2L * batch * headsKv * strips + (long)batch * headsQ * qTiles;

    /// <summary>Kernel entry for dense inputs.</summary>
    public static void Run(QkvQuantizeParams p) => Quantize(p, packed: false);

    /// <summary>Kernel entry for packed sequences (one [1, H, T, D] tensor each, sequences from cu_seqlens).</summary>
    public static void RunPacked(QkvQuantizeParams p) => Quantize(p, packed: true);

    /// <summary>The kernel body; <paramref name="packed"/> is a constant of each entry point, so the dense PTX has no packed code.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quantize(QkvQuantizeParams p, bool packed)
    {
        var rowAbsMax = SharedMemory.Allocate<float>(SageConstants.QTileRows);
        var rowInverse = SharedMemory.Allocate<float>(SageConstants.QTileRows);
        var channelA = SharedMemory.Allocate<float>(MaxHeadDim);
        var channelB = SharedMemory.Allocate<float>(MaxHeadDim);
        var staged = SharedMemory.Allocate<Half8>(TileStaging.Chunks);

        int tid = Group.IdxX, dp = p.PaddedHeadDim;
        var m = new TileSlices.Mapping(tid, dp);
        int kvHeads = (packed ? p.Sequences : p.K.Batch) * p.K.Heads;
        long kvItems = (long)kvHeads * p.Strips;
        long item = Grid.IdxX;
        if (item < 2 * kvItems)
        {
            bool isV = item >= kvItems;
            int index = (int)(isV ? item - kvItems : item);
            int bh = index / p.Strips, b = bh / p.K.Heads, h = bh % p.K.Heads;
            int firstTile = index % p.Strips * p.StripTiles;
            // Statistics and V scales of entry b; the tiles of its tensors (b is 0 once a sequence is narrowed).
            long headChunk0 = (long)bh * p.StatsChunks, scaleBase = (long)bh * dp;
            int chunks = p.StatsChunks;
            if (packed)
            {
                var span = p.KSequences.Resolve(b, p.K.Tokens);
                // An empty sequence still gets V scales (scale 1, mean 0): the attention kernel multiplies its zero rows by them.
                if (firstTile * SageConstants.KBlockKeys >= span.Length && !(isV && firstTile == 0))
                    return;
                NarrowKeys(ref p, span);
                b = 0;
                chunks = ChannelStatsKernel.UsedChunks(chunks, span.Length);
            }
            int endTile = Math.Min(firstTile + p.StripTiles,
                packed ? (p.K.Tokens + SageConstants.KBlockKeys - 1) / SageConstants.KBlockKeys : p.NkPad / SageConstants.KBlockKeys);
            if (isV)
                QuantizeVStrip(p, b, h, headChunk0, chunks, scaleBase, firstTile, endTile, m, channelA, channelB, staged);
            else
                QuantizeKStrip(p, b, h, headChunk0, chunks, firstTile, endTile, m, channelA, rowAbsMax, rowInverse);
        }
        else
        {
            int qTiles = packed ? p.SequenceQTiles : p.NqPad / SageConstants.QTileRows;
            int index = (int)(item - 2 * kvItems);
            int bh = index / qTiles, b = bh / p.Q.Heads, tile = index % qTiles;
            if (packed)
            {
                var span = p.QSequences.Resolve(b, p.Q.Tokens);
                if (tile * SageConstants.QTileRows >= span.Length)
                    return;
                NarrowQueries(ref p, span);
                b = 0;
            }
            Int8TileQuantizer.Run(p.Q, p.QOut, p.QScales, b, bh % p.Q.Heads, tile, p.NqPad, dp,
                p.ElementType, p.Granularity, 0, p.QScaleFold, (p.VectorLoads & 1) != 0, default, m, rowAbsMax, rowInverse);
        }
    }

    /// <summary>
    /// Points K, V and their outputs at one packed sequence: inputs from its first token with its length, INT8 K, K scales
    /// and Vᵀ from its padded start (the loads check their own alignment on the absolute index).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NarrowKeys(ref QkvQuantizeParams p, in SequenceSpan span)
    {
        int dp = p.PaddedHeadDim, start = span.PaddedStart;
        p.K = p.K.Narrow(span);
        p.V = p.V.Narrow(span);
        p.KOut = p.KOut.SubView((long)start * dp, p.KOut.Length - (long)start * dp);
        long kScales = (long)start / SageConstants.KBlockKeys * SageConstants.KScaleSlotsPerBlock;
        p.KScales = p.KScales.SubView(kScales, p.KScales.Length - kScales);
        long vWords = start / (p.VFormat == (int)Quantization.VFormat.Fp16 ? 2 : 4);
        p.VOut = p.VOut.SubView(vWords, p.VOut.Length - vWords);
    }

    /// <summary>Points Q and its outputs at one packed sequence, as <see cref="NarrowKeys"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NarrowQueries(ref QkvQuantizeParams p, in SequenceSpan span)
    {
        int dp = p.PaddedHeadDim, start = span.PaddedStart;
        p.Q = p.Q.Narrow(span);
        p.QOut = p.QOut.SubView((long)start * dp, p.QOut.Length - (long)start * dp);
        long qScales = (long)start / SageConstants.QTileRows * SageConstants.QScaleSlotsPerTile;
        p.QScales = p.QScales.SubView(qScales, p.QScales.Length - qScales);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantizeKStrip(in QkvQuantizeParams p, int b, int h, long headChunk0, int chunks, int firstTile, int endTile,
        in TileSlices.Mapping m, ArrayView<float> means, ArrayView<float> rowAbsMax, ArrayView<float> rowInverse)
    {
        int tid = Group.IdxX, dp = p.PaddedHeadDim;
        if (tid < dp)
            means[tid] = KChannelMean(p, headChunk0, chunks, tid);
        Group.Barrier();
        var mean = Float8.Read(means, m.C0);
        for (int tile = firstTile; tile < endTile; tile++)
        {
            Int8TileQuantizer.Run(p.K, p.KOut, p.KScales, b, h, tile, p.NkPad, dp, p.ElementType, p.Granularity, 1, 1f,
                (p.VectorLoads & 2) != 0, mean, m, rowAbsMax, rowInverse);
            // The next tile's phase 1 rewrites rowAbsMax, which this tile's phase 2 has finished reading (second barrier).
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantizeVStrip(in QkvQuantizeParams p, int b, int h, long headChunk0, int chunks, long scaleBase, int firstTile,
        int endTile, in TileSlices.Mapping m, ArrayView<float> inverses, ArrayView<float> centers, ArrayView<Half8> staged)
    {
        int tid = Group.IdxX, dp = p.PaddedHeadDim;
        if (tid < dp)
        {
            int c = tid;
            VChannel(p, headChunk0, chunks, c, out float scale, out float center);
            inverses[c] = 1f / scale;
            centers[c] = center;
            if (firstTile == 0)
            {
                long channel = scaleBase + c;
                p.VScales[channel] = scale;
                p.VMeans[channel] = center;
            }
        }
        Group.Barrier();
        for (int tile = firstTile; tile < endTile; tile++)
        {
            VTileQuantizer.Run(p.V, p.VOut, b, h, tile, p.NkPad, dp, p.ElementType, p.VFormat, (p.VectorLoads & 4) != 0,
                centers, inverses, m, staged);
        }
    }

    /// <summary>
    /// K's smoothing mean of channel <paramref name="c"/> of the head whose first statistics chunk is
    /// <paramref name="headChunk0"/> (<paramref name="chunks"/> of them hold its tokens): 0 without K smoothing or for a
    /// padding channel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float KChannelMean(in QkvQuantizeParams p, long headChunk0, int chunks, int c) =>
        p.SmoothK != 0 && c < p.K.HeadDim ? ChannelMean(p.KStats, headChunk0, chunks, c, p.PaddedHeadDim, p.K.Tokens) : 0f;

    /// <summary>
    /// V's scale and center of channel <paramref name="c"/> of the head whose first statistics chunk is
    /// <paramref name="headChunk0"/> (<paramref name="chunks"/> of them hold its tokens); without statistics (or for a padding channel) the scale of a zero maximum and no center.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void VChannel(in QkvQuantizeParams p, long headChunk0, int chunks, int c, out float scale, out float center)
    {
        int dp = p.PaddedHeadDim;
        bool stats = p.ReadVStats != 0 && c < p.V.HeadDim;
        center = stats && p.SmoothV != 0 ? ChannelMean(p.VStats, headChunk0, chunks, c, dp, p.V.Tokens) : 0f;
        float amax = stats ? AbsMaxAround(p.VStats, headChunk0, chunks, c, dp, center) : 0f;
        scale = QuantizeVKernel.ChannelScale(amax, p.VFormat);
    }

    /// <summary>
    /// <see cref="ChannelStatsKernel.Mean"/> with four chunk loads in flight: the same additions in chunk order
    /// (bit-identical), a quarter of the dependent load latency.
    /// </summary>
    public static float ChannelMean(ArrayView<float> stats, long headChunk0, int chunks, int c, int dp, int tokens)
    {
        float sum = 0;
        int k = 0;
        for (; k + 4 <= chunks; k += 4)
        {
            float s0 = stats[SumIndex(headChunk0 + k, c, dp)];
            float s1 = stats[SumIndex(headChunk0 + k + 1, c, dp)];
            float s2 = stats[SumIndex(headChunk0 + k + 2, c, dp)];
            float s3 = stats[SumIndex(headChunk0 + k + 3, c, dp)];
            sum += s0;
            sum += s1;
            sum += s2;
            sum += s3;
        }
        for (; k < chunks; k++)
            sum += stats[SumIndex(headChunk0 + k, c, dp)];
        // No tokens (an empty packed sequence): mean 0, as ChannelStatsKernel.Mean.
        return tokens > 0 ? sum / tokens : 0f;
    }

    /// <summary><see cref="ChannelStatsKernel.AbsMaxAround"/> with four chunks per step (a maximum is order-free).</summary>
    public static float AbsMaxAround(ArrayView<float> stats, long headChunk0, int chunks, int c, int dp, float center)
    {
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int k = 0;
        for (; k + 4 <= chunks; k += 4)
        {
            a0 = Math.Max(a0, ChunkAbsMax(stats, headChunk0 + k, c, dp, center));
            a1 = Math.Max(a1, ChunkAbsMax(stats, headChunk0 + k + 1, c, dp, center));
            a2 = Math.Max(a2, ChunkAbsMax(stats, headChunk0 + k + 2, c, dp, center));
            a3 = Math.Max(a3, ChunkAbsMax(stats, headChunk0 + k + 3, c, dp, center));
        }
        for (; k < chunks; k++)
            a0 = Math.Max(a0, ChunkAbsMax(stats, headChunk0 + k, c, dp, center));
        return Math.Max(Math.Max(a0, a1), Math.Max(a2, a3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ChunkAbsMax(ArrayView<float> stats, long chunk, int c, int dp, float center)
    {
        long row = chunk * ChannelStatsKernel.RowsPerChunk;
        float lo = stats[(row + ChannelStatsKernel.MinRow) * dp + c] - center;
        float hi = stats[(row + ChannelStatsKernel.MaxRow) * dp + c] - center;
        return Math.Max(Math.Abs(lo), Math.Abs(hi));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SumIndex(long chunk, int c, int dp) => (chunk * ChannelStatsKernel.RowsPerChunk + ChannelStatsKernel.SumRow) * dp + c;
}
