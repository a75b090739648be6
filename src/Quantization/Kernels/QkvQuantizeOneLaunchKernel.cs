using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace SageAttn.Quantization.Kernels;

/// <summary>Parameters of <see cref="QkvQuantizeOneLaunchKernel"/>.</summary>
public struct OneLaunchQuantizeParams
{
    /// <summary>Tensors, outputs, statistics and options, as for <see cref="QkvQuantizeKernel"/> (its strip fields are unused).</summary>
    public QkvQuantizeParams Tiles;
    /// <summary>
    /// [0] the ticket counter; [1 + 2 · bh], [2 + 2 · bh] the arrival counters of K's and V's statistics of K/V head bh; then
    /// K's channel means [B · Hkv, Dp] as float bits. The counters (<see cref="QkvQuantizeOneLaunchKernel.CounterCount"/>)
    /// are zeroed before every launch.
    /// </summary>
    public ArrayView<int> Coordination;
    /// <summary>Steps between a head's statistics items and its quantization items (<see cref="QkvQuantizeOneLaunchKernel.LagSteps"/>).</summary>
    public int Lag;
}

/// <summary>
/// Q, K and V quantized in one launch: the statistics of a head and, a few thousand blocks later, its quantization, so the
/// statistics (a third of the bytes) overlap the quantization instead of running alone first. Bit for bit the outputs and
/// statistics of <see cref="KvStatsKernel"/> followed by <see cref="QkvQuantizeKernel"/>.
/// </summary>
/// <remarks>
/// <para>Work items, in the order of an atomic ticket (not of block indices): K's steps, then V's, then the Q tiles. Step s
/// of a tensor holds the statistics items of head s (one per 256-token chunk, one per two chunks at Dp = 64:
/// <see cref="StatsItems"/>) and the quantization items of head s − <see cref="OneLaunchQuantizeParams.Lag"/> (one per
/// 64-row tile). A statistics item stages its chunks tile by tile in shared memory so that one thread per channel and
/// chunk sums the tokens in order (the statistics kernel's sums), writes each chunk's sum, minimum and maximum, and adds
/// its chunk count to the head's arrival counter; the item whose add completes the count combines the head's chunks
/// (K's channel means, V's scales and means, as the two-launch path does once per strip) and marks the head ready. A
/// quantization item waits until its head is ready, then quantizes its tile as <see cref="QkvQuantizeKernel"/> does.</para>
/// <para>Why it cannot deadlock: only quantization items wait, and only for statistics items, which hold earlier tickets —
/// so they were taken by blocks that have started — and never wait themselves. The lag keeps the wait rare (about 4096
/// items separate a head's statistics from its quantization, five times the blocks resident on an H100). A lag of ~1024
/// let the quantization re-read K and V from L2 (DRAM reads 670 → 466 MB at hd128 1K) but its tiles waited (424 µs);
/// at ~4096 they come from DRAM again, and the launch took 392 µs against 446 for the two launches (H100, ncu).</para>
/// <para>Grid (<see cref="Items"/>, 1, 1), 128 threads. The same code runs on the CPU accelerator, whose groups take
/// tickets as they start.</para>
/// </remarks>
public static class QkvQuantizeOneLaunchKernel
{
    private const int MaxHeadDim = 128;

    /// <summary>
    /// Longest head, in statistics chunks, the launchers give this kernel (4096 tokens): every quantization item of a head
    /// waits for its combine, which reads all of the head's chunk statistics; longer heads were not measured.
    /// </summary>
    public const int MaxChunks = 16;

    /// <summary>Work items between a head's statistics and its quantization the lag aims for: about five times the blocks resident on an H100 (132 SMs × 6), so a tile rarely waits.</summary>
    public const int LagItems = 4096;

    /// <summary>Ints of the ticket and arrival counters for <paramref name="kvHeads"/> = B · Hkv (zeroed per launch).</summary>
    public static long CounterCount(long kvHeads) => 1 + 2 * kvHeads;

    /// <summary>Ints of <see cref="OneLaunchQuantizeParams.Coordination"/>: the counters, then K's channel means.</summary>
    public static long CoordinationCount(long kvHeads, int paddedHeadDim) => CounterCount(kvHeads) + kvHeads * paddedHeadDim;

    /// <summary>
    /// Statistics items of one head and tensor: one per chunk, or at Dp = 64 one per two chunks, so that every thread of
    /// the item sums a channel (threads 0..63 the first chunk's, 64..127 the second's) instead of half of them idling.
    /// </summary>
    public static int StatsItems(int chunks, int paddedHeadDim) => paddedHeadDim == 64 ? (chunks + 1) / 2 : chunks;

    /// <summary>Work items of one step of one tensor: a head's statistics items (<see cref="StatsItems"/>) and the tiles of the head <c>lag</c> steps back.</summary>
    public static long StepItems(int kTiles, int chunks, int paddedHeadDim) => (long)StatsItems(chunks, paddedHeadDim) + kTiles;

    /// <summary>
    /// Steps of lag so that about <see cref="LagItems"/> items separate a head's statistics from its quantization; at most
    /// the number of heads (<paramref name="kvHeads"/> = B · Hkv), past which every head's statistics come first anyway.
    /// </summary>
    public static int LagSteps(long stepItems, long kvHeads) =>
        (int)Math.Clamp((LagItems + stepItems - 1) / stepItems, 1, Math.Max(1, kvHeads));

    /// <summary>
    /// Blocks of a launch: (B · Hkv + lag) steps of K, the same of V, then the Q tiles; the items of absent heads (the lag's
    /// first and last steps) return at once.
    /// </summary>
    public static long Items(int batch, int headsQ, int headsKv, int qTiles, long stepItems, int lag) =>
        2 * ((long)batch * headsKv + lag) * stepItems + (long)batch * headsQ * qTiles;

    /// <param name="sp">The launch's parameters; the four below override their fields.</param>
    /// <param name="paddedHeadDim">Dp (64 or 128) as a compile-time constant.</param>
    /// <param name="elementType">The inputs' <c>TensorElementType</c> as a compile-time constant.</param>
    /// <param name="vFormat">The <see cref="VFormat"/> as a compile-time constant.</param>
    /// <param name="granularity">The <see cref="QuantGranularity"/> as a compile-time constant.</param>
    /// <remarks>Why specialized: with these four as run-time values every combination's code is in the kernel, and the
    /// statistics, K, V and Q paths running side by side on an SM missed the instruction cache (H100, ncu: 5.3 of 15.4
    /// cycles per issued instruction waiting for an instruction fetch; 0.9 specialized, with K's steps before V's).</remarks>
    public static void Run(OneLaunchQuantizeParams sp, SpecializedValue<int> paddedHeadDim, SpecializedValue<int> elementType,
        SpecializedValue<int> vFormat, SpecializedValue<int> granularity)
    {
        sp.Tiles.PaddedHeadDim = paddedHeadDim.Value;
        sp.Tiles.ElementType = elementType.Value;
        sp.Tiles.VFormat = vFormat.Value;
        sp.Tiles.Granularity = granularity.Value;
        var rowAbsMax = SharedMemory.Allocate<float>(SageConstants.QTileRows);
        var rowInverse = SharedMemory.Allocate<float>(SageConstants.QTileRows);
        var channelA = SharedMemory.Allocate<float>(MaxHeadDim);
        var channelB = SharedMemory.Allocate<float>(MaxHeadDim);
        var staged = SharedMemory.Allocate<Half8>(TileStaging.Chunks);
        var broadcast = SharedMemory.Allocate<int>(1);

        int tid = Group.IdxX;
        if (tid == 0)
            broadcast[0] = Atomic.Add(ref sp.Coordination[0], 1);
        Group.Barrier();
        long ticket = broadcast[0];
        // Every thread has read the ticket before the slot is reused (the statistics' last-arrival flag).
        Group.Barrier();

        var p = sp.Tiles;
        var m = new TileSlices.Mapping(tid, p.PaddedHeadDim);
        int statsItems = StatsItems(p.StatsChunks, p.PaddedHeadDim), kTiles = p.NkPad / SageConstants.KBlockKeys;
        int qTiles = p.NqPad / SageConstants.QTileRows;
        int kvHeads = p.K.Batch * p.K.Heads;
        long stepItems = (long)statsItems + kTiles, tensorItems = (kvHeads + (long)sp.Lag) * stepItems;
        if (ticket < 2 * tensorItems)
        {
            // K's steps, then V's: an SM runs one tensor's statistics and quantization code at a time.
            bool isV = ticket >= tensorItems;
            long t = isV ? ticket - tensorItems : ticket;
            int step = (int)(t / stepItems), r = (int)(t % stepItems);
            if (r < statsItems)
            {
                if (step < kvHeads)
                    StatisticsItem(sp, step, isV, r, m, staged, broadcast);
            }
            else
            {
                int bh = step - sp.Lag, tile = r - statsItems;
                if (bh >= 0 && bh < kvHeads)
                {
                    if (isV)
                        QuantizeVItem(sp, bh, tile, m, channelA, channelB, staged);
                    else
                        QuantizeKItem(sp, bh, tile, m, channelA, rowAbsMax, rowInverse);
                }
            }
        }
        else
        {
            int index = (int)(ticket - 2 * tensorItems), bh = index / qTiles;
            Int8TileQuantizer.Run(p.Q, p.QOut, p.QScales, bh / p.Q.Heads, bh % p.Q.Heads, index % qTiles, p.NqPad, p.PaddedHeadDim,
                p.ElementType, p.Granularity, 0, p.QScaleFold, (p.VectorLoads & 1) != 0, default, m, rowAbsMax, rowInverse);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StatisticsItem(in OneLaunchQuantizeParams sp, int bh, bool isV, int item, in TileSlices.Mapping m,
        ArrayView<Half8> staged, ArrayView<int> broadcast)
    {
        var p = sp.Tiles;
        int b = bh / p.K.Heads, h = bh % p.K.Heads;
        // At Dp = 64 an item sums chunks 2·item and 2·item + 1 (the last item of an odd count only the first).
        bool pairs = p.PaddedHeadDim == 64;
        int chunk = pairs ? 2 * item : item, itemChunks = pairs ? Math.Min(2, p.StatsChunks - chunk) : 1;
        long headChunk = (long)bh * p.StatsChunks + chunk;
        // Two call sites instead of one on a selected tensor: ILGPU proves the 16-byte alignment of the vector loads only
        // for a view taken straight from the parameters.
        if (isV)
        {
            if (p.ReadVStats == 0)
                return;
            ChunkStatistics(p.V, p.VStats, p.ElementType, p.PaddedHeadDim, (p.VectorLoads & 4) != 0, b, h, chunk, itemChunks, headChunk, m, staged);
        }
        else
        {
            if (p.SmoothK == 0)
                return;
            ChunkStatistics(p.K, p.KStats, p.ElementType, p.PaddedHeadDim, (p.VectorLoads & 2) != 0, b, h, chunk, itemChunks, headChunk, m, staged);
        }

        // Arrive with the item's chunks; the item that completes the head's count combines them all, then marks the head
        // ready (count chunks + 1).
        int counter = ArrivalCounter(bh, isV);
        Group.Barrier();
        if (Group.IdxX == 0)
        {
            MemoryFence.DeviceLevel();
            broadcast[0] = Atomic.Add(ref sp.Coordination[counter], itemChunks);
            MemoryFence.DeviceLevel();
        }
        Group.Barrier();
        if (broadcast[0] != p.StatsChunks - itemChunks)
            return;
        if (isV)
            CombineV(p, bh);
        else
            CombineK(sp, bh);
        Group.Barrier();
        if (Group.IdxX == 0)
        {
            MemoryFence.DeviceLevel();
            Atomic.Add(ref sp.Coordination[counter], 1);
        }
    }

    /// <summary>K's channel means of head <paramref name="bh"/>, as <see cref="QkvQuantizeKernel"/>'s K strips compute them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CombineK(in OneLaunchQuantizeParams sp, int bh)
    {
        var p = sp.Tiles;
        int c = Group.IdxX, dp = p.PaddedHeadDim;
        if (c >= dp)
            return;
        float mean = QkvQuantizeKernel.KChannelMean(p, (long)bh * p.StatsChunks, p.StatsChunks, c);
        sp.Coordination[KMeanIndex(p, bh, c)] = (int)Interop.FloatAsInt(mean);
    }

    /// <summary>V's channel means and scales of head <paramref name="bh"/> (the outputs), as <see cref="QkvQuantizeKernel"/>'s V strips compute them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CombineV(in QkvQuantizeParams p, int bh)
    {
        int c = Group.IdxX, dp = p.PaddedHeadDim;
        if (c >= dp)
            return;
        QkvQuantizeKernel.VChannel(p, (long)bh * p.StatsChunks, p.StatsChunks, c, out float scale, out float center);
        long channel = (long)bh * dp + c;
        p.VScales[channel] = scale;
        p.VMeans[channel] = center;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantizeKItem(in OneLaunchQuantizeParams sp, int bh, int tile, in TileSlices.Mapping m, ArrayView<float> means,
        ArrayView<float> rowAbsMax, ArrayView<float> rowInverse)
    {
        var p = sp.Tiles;
        int tid = Group.IdxX, dp = p.PaddedHeadDim;
        bool smooth = p.SmoothK != 0;
        if (smooth)
            WaitReady(sp.Coordination, ArrivalCounter(bh, false), p.StatsChunks);
        if (tid < dp)
            means[tid] = smooth ? Interop.IntAsFloat((uint)sp.Coordination[KMeanIndex(p, bh, tid)]) : 0f;
        Group.Barrier();
        var mean = Float8.Read(means, m.C0);
        Int8TileQuantizer.Run(p.K, p.KOut, p.KScales, bh / p.K.Heads, bh % p.K.Heads, tile, p.NkPad, dp, p.ElementType, p.Granularity, 1, 1f,
            (p.VectorLoads & 2) != 0, mean, m, rowAbsMax, rowInverse);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantizeVItem(in OneLaunchQuantizeParams sp, int bh, int tile, in TileSlices.Mapping m, ArrayView<float> inverses,
        ArrayView<float> centers, ArrayView<Half8> staged)
    {
        var p = sp.Tiles;
        int tid = Group.IdxX, dp = p.PaddedHeadDim;
        bool stats = p.ReadVStats != 0;
        if (stats)
            WaitReady(sp.Coordination, ArrivalCounter(bh, true), p.StatsChunks);
        if (tid < dp)
        {
            long channel = (long)bh * dp + tid;
            float scale, center;
            if (stats)
            {
                scale = p.VScales[channel];
                center = p.VMeans[channel];
            }
            else
            {
                // No statistics: scale 1 (QkvQuantizeKernel's value for a zero maximum), no center; the head's first tile writes them.
                scale = QuantizeVKernel.ChannelScale(0f, p.VFormat);
                center = 0f;
                if (tile == 0)
                {
                    p.VScales[channel] = scale;
                    p.VMeans[channel] = center;
                }
            }
            inverses[tid] = 1f / scale;
            centers[tid] = center;
        }
        Group.Barrier();
        VTileQuantizer.Run(p.V, p.VOut, bh / p.V.Heads, bh % p.V.Heads, tile, p.NkPad, dp, p.ElementType, p.VFormat, (p.VectorLoads & 4) != 0,
            centers, inverses, m, staged);
    }

    /// <summary>
    /// Waits until the head's statistics are combined (its counter reached chunks + 1): one thread spins on an atomic read
    /// (a plain load could be served from this SM's L1 forever), then a device fence orders the block's later reads after it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WaitReady(ArrayView<int> coordination, int counter, int chunks)
    {
        if (Group.IdxX == 0)
        {
            while (Atomic.Add(ref coordination[counter], 0) <= chunks)
            {
            }
            MemoryFence.DeviceLevel();
        }
        Group.Barrier();
    }

    /// <summary>Index in <see cref="OneLaunchQuantizeParams.Coordination"/> of head <paramref name="bh"/>'s arrival counter for K or V.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ArrivalCounter(int bh, bool isV) => 1 + 2 * bh + (isV ? 1 : 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long KMeanIndex(in QkvQuantizeParams p, int bh, int c) =>
        CounterCount((long)p.K.Batch * p.K.Heads) + (long)bh * p.PaddedHeadDim + c;

    /// <summary>
    /// The per-channel sum, minimum and maximum of <paramref name="itemChunks"/> (1, or 2 at Dp = 64) chunks from
    /// <paramref name="chunk"/> on, written where <see cref="KvStatsKernel"/> writes them: each tile is staged as raw bits in
    /// shared memory (<see cref="TileStaging"/>; at Dp = 64 the second chunk's tile in rows 64..127) and thread c walks
    /// channel c's tokens in order (at Dp = 64 threads 64 + c the second chunk's), so each sum is the same sequence of
    /// additions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ChunkStatistics(in StridedTensor input, ArrayView<float> stats, int elementType, int dp, bool vector, int b, int h,
        int chunk, int itemChunks, long headChunk, in TileSlices.Mapping m, ArrayView<Half8> staged)
    {
        int tid = Group.IdxX;
        var bits = staged.Cast<ushort>();
        bool pairs = dp == 64;
        int firstRow = chunk * SageConstants.StatsChunkTokens;
        int end = Math.Min(input.Tokens, firstRow + SageConstants.StatsChunkTokens);
        // The second chunk (Dp = 64) starts where the first ends; it is at most as long.
        int secondEnd = itemChunks == 2 ? Math.Min(input.Tokens, end + SageConstants.StatsChunkTokens) : end;
        // This thread's chunk, channel and staged rows.
        bool second = pairs && tid >= 64;
        int c = pairs ? tid & 63 : tid, stagedRow0 = second ? SageConstants.KBlockKeys : 0;
        int myFirst = second ? end : firstRow, myEnd = second ? secondEnd : end;
        bool summing = pairs || tid < dp;
        float sum = 0f, min = float.MaxValue, max = float.MinValue;
        var s = default(TileSlices);
        var s2 = default(TileSlices);
        for (int offset = 0; firstRow + offset < end; offset += SageConstants.KBlockKeys)
        {
            s.Load(input, b, h, firstRow + offset, m, vector);
            bool both = pairs && end + offset < secondEnd;
            if (both)
                s2.Load(input, b, h, end + offset, m, vector);
            // The previous tile's readers are done with the staging area.
            Group.Barrier();
            s.Stage(staged, m, dp, 0);
            if (both)
                s2.Stage(staged, m, dp, SageConstants.KBlockKeys);
            Group.Barrier();
            int rows = Math.Min(SageConstants.KBlockKeys, myEnd - (myFirst + offset));
            if (summing && rows > 0)
            {
                int r = 0;
                for (; r + 8 <= rows; r += 8)
                {
                    int sr = stagedRow0 + r;
                    float x0 = TileStaging.Read(bits, sr, c, dp, elementType), x1 = TileStaging.Read(bits, sr + 1, c, dp, elementType);
                    float x2 = TileStaging.Read(bits, sr + 2, c, dp, elementType), x3 = TileStaging.Read(bits, sr + 3, c, dp, elementType);
                    float x4 = TileStaging.Read(bits, sr + 4, c, dp, elementType), x5 = TileStaging.Read(bits, sr + 5, c, dp, elementType);
                    float x6 = TileStaging.Read(bits, sr + 6, c, dp, elementType), x7 = TileStaging.Read(bits, sr + 7, c, dp, elementType);
                    sum += x0; sum += x1; sum += x2; sum += x3; sum += x4; sum += x5; sum += x6; sum += x7;
                    min = Math.Min(Math.Min(Math.Min(min, Math.Min(x0, x1)), Math.Min(x2, x3)), Math.Min(Math.Min(x4, x5), Math.Min(x6, x7)));
                    max = Math.Max(Math.Max(Math.Max(max, Math.Max(x0, x1)), Math.Max(x2, x3)), Math.Max(Math.Max(x4, x5), Math.Max(x6, x7)));
                }
                for (; r < rows; r++)
                {
                    float x = TileStaging.Read(bits, stagedRow0 + r, c, dp, elementType);
                    sum += x;
                    min = Math.Min(min, x);
                    max = Math.Max(max, x);
                }
            }
        }
        if (summing && (!second || itemChunks == 2))
        {
            bool real = c < input.HeadDim;
            long row = (headChunk + (second ? 1 : 0)) * ChannelStatsKernel.RowsPerChunk;
            stats[(row + ChannelStatsKernel.SumRow) * dp + c] = real ? sum : 0f;
            stats[(row + ChannelStatsKernel.MinRow) * dp + c] = real ? min : 0f;
            stats[(row + ChannelStatsKernel.MaxRow) * dp + c] = real ? max : 0f;
        }
    }
}
