using System.Runtime.CompilerServices;
using ILGPU;

namespace SageAttn.Quantization.Kernels;

/// <summary>Parameters of <see cref="KvStatsKernel"/>.</summary>
public struct KvStatsParams
{
    /// <summary>K and V in fp16/bf16, [B, Hkv, Nk, D] through strides.</summary>
    public StridedTensor K, V;
    /// <summary>Partial statistics of K and of V, each in the layout of <see cref="ChannelStatsKernel"/>.</summary>
    public ArrayView<float> KStats, VStats;
    public int ElementType;
    public int PaddedHeadDim;
    /// <summary>Chunks of <see cref="SageConstants.StatsChunkTokens"/> tokens per head.</summary>
    public int Chunks;
    /// <summary>Bit 0: K may be read with 16-byte loads (first element 16-byte aligned); bit 1: V.</summary>
    public int VectorLoads;
    /// <summary>2: statistics of K and V; 1: of K only (the quantizer will not read V's, see <see cref="SageConstants.VMaxFp16Value"/>).</summary>
    public int Tensors;
    /// <summary>Packed (<see cref="KvStatsKernel.RunPacked"/>): the sequences of K and V; unused when dense.</summary>
    public PackedSequences Sequences;
    /// <summary>Packed: the number of sequences (the tensors' batch is 1); unused when dense.</summary>
    public int SequenceCount;
}

/// <summary>
/// The channel statistics of K and V in one launch: per chunk of 256 tokens and channel, the sum, minimum and
/// maximum — the same numbers, layout and summation order as <see cref="ChannelStatsKernel"/> run twice.
/// </summary>
/// <remarks>
/// <para>Mapping: a thread owns 8 adjacent channels (one 16-byte load per token row) of one tensor and one
/// chunk, and walks the chunk's tokens in order, so each partial sum is the sequential sum the reference makes.
/// Dp / 8 consecutive threads cover a row: a row of a warp is one coalesced 128- or 256-byte read. Slot
/// s = tid / (Dp / 8) of the 128-thread block takes tensor s % 2 (K, V) of slot blockSlot0 + s / 2; with K only
/// (<see cref="KvStatsParams.Tensors"/> = 1), slot blockSlot0 + s. Slots are the (batch, head, chunk) triples in that
/// order, so a block may span heads.</para>
/// <para>Why: one thread per channel with 2-byte loads (the separate kernel) kept one small load in flight per
/// thread; here eight 16-byte loads are issued before the first is used.</para>
/// <para>Packed sequences (<see cref="RunPacked"/>): slots are (sequence, head, chunk) for chunks of the longest
/// sequence; a slot past its sequence's last chunk writes nothing (the quantizers combine only the chunks holding
/// tokens), the others read the sequence narrowed to a tensor of its own.</para>
/// <para>Grid (<see cref="Blocks"/>, 1, 1), 128 threads.</para>
/// </remarks>
public static class KvStatsKernel
{
    /// <summary>Threads per block.</summary>
    public const int Threads = 128;

    /// <summary>Chunks one block covers: each chunk takes Dp / 8 threads per tensor (<paramref name="tensors"/>: 2 for K and V, 1 for K).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ChunksPerBlock(int paddedHeadDim, int tensors) => Threads / (tensors * (paddedHeadDim / 8));

    /// <summary>Blocks of a launch: one slot per (batch, head, chunk), <see cref="ChunksPerBlock"/> of them per block.</summary>
    public static int Blocks(int batch, int heads, int chunks, int paddedHeadDim, int tensors)
    {
        long slots = (long)batch * heads * chunks, perBlock = ChunksPerBlock(paddedHeadDim, tensors);
        return (int)((slots + perBlock - 1) / perBlock);
    }

    /// <summary>Kernel entry for dense inputs.</summary>
    public static void Run(KvStatsParams p) => Gather(p, packed: false);

    /// <summary>Kernel entry for packed sequences (K and V each one [1, H, T, D] tensor, sequences from cu_seqlens).</summary>
    public static void RunPacked(KvStatsParams p) => Gather(p, packed: true);

    /// <summary>The kernel body; <paramref name="packed"/> is a constant of each entry point.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Gather(KvStatsParams p, bool packed)
    {
        int lanesPerRow = p.PaddedHeadDim / 8;
        int tid = Group.IdxX, slot = tid / lanesPerRow, lane = tid & (lanesPerRow - 1);
        int tensors = p.Tensors;
        // (batch, head, chunk) flattened: a head with fewer chunks than a block has slots (hd64 at 1K: 4 of 8) shares the
        // block with the next head instead of leaving threads idle (which, at 4 blocks per SM, took two waves).
        long headChunk = (long)Grid.IdxX * ChunksPerBlock(p.PaddedHeadDim, tensors) + slot / tensors;
        if (headChunk >= (long)(packed ? p.SequenceCount : p.K.Batch) * p.K.Heads * p.Chunks)
            return;
        int chunk = (int)(headChunk % p.Chunks), bh = (int)(headChunk / p.Chunks);
        int h = bh % p.K.Heads, b = bh / p.K.Heads;
        // The slot's statistics row: entry b's (the sequence's when packed).
        long row = (long)bh * p.Chunks + chunk;
        if (packed)
        {
            var span = p.Sequences.Resolve(b, p.K.Tokens);
            if (chunk * SageConstants.StatsChunkTokens >= span.Length)
                return;
            p.K = p.K.Narrow(span);
            p.V = p.V.Narrow(span);
            b = 0;
        }
        // Two call sites instead of one on a selected tensor: ILGPU proves the 16-byte alignment of the vector
        // loads only for a view taken straight from the parameters (a selected view got four 4-byte loads).
        if (tensors == 2 && (slot & 1) != 0)
            Accumulate(p.V, p.VStats, p.ElementType, p.PaddedHeadDim, row, (p.VectorLoads & 2) != 0, b, h, chunk, lane * 8);
        else
            Accumulate(p.K, p.KStats, p.ElementType, p.PaddedHeadDim, row, (p.VectorLoads & 1) != 0, b, h, chunk, lane * 8);
    }

    /// <summary>Sums chunk <paramref name="chunk"/> of head (b, h) of <paramref name="input"/> into statistics row <paramref name="statsChunk"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(in StridedTensor input, ArrayView<float> stats, int elementType, int paddedHeadDim, long statsChunk,
        bool vector, int b, int h, int chunk, int c0)
    {
        int first = chunk * SageConstants.StatsChunkTokens;
        int end = Math.Min(input.Tokens, first + SageConstants.StatsChunkTokens);
        var acc = ChannelAccumulator8.Empty;
        int n = first;
        for (; n + 8 <= end; n += 8)
        {
            // Eight loads in flight, then accumulated in token order. With four, the launch read at 32 % of the H200's
            // DRAM bandwidth (ncu, hd128, B 16 × H 32 × 1K tokens): each thread's loads arrive, then it computes.
            var r0 = Half8.Load(input, b, h, n, c0, vector);
            var r1 = Half8.Load(input, b, h, n + 1, c0, vector);
            var r2 = Half8.Load(input, b, h, n + 2, c0, vector);
            var r3 = Half8.Load(input, b, h, n + 3, c0, vector);
            var r4 = Half8.Load(input, b, h, n + 4, c0, vector);
            var r5 = Half8.Load(input, b, h, n + 5, c0, vector);
            var r6 = Half8.Load(input, b, h, n + 6, c0, vector);
            var r7 = Half8.Load(input, b, h, n + 7, c0, vector);
            acc.Add(r0.Decode(elementType));
            acc.Add(r1.Decode(elementType));
            acc.Add(r2.Decode(elementType));
            acc.Add(r3.Decode(elementType));
            acc.Add(r4.Decode(elementType));
            acc.Add(r5.Decode(elementType));
            acc.Add(r6.Decode(elementType));
            acc.Add(r7.Decode(elementType));
        }
        for (; n < end; n++)
            acc.Add(Half8.Load(input, b, h, n, c0, vector).Decode(elementType));

        long row = statsChunk * ChannelStatsKernel.RowsPerChunk;
        int valid = input.HeadDim - c0;
        Write(stats, (row + ChannelStatsKernel.SumRow) * paddedHeadDim + c0, acc.Sum, valid);
        Write(stats, (row + ChannelStatsKernel.MinRow) * paddedHeadDim + c0, acc.Min, valid);
        Write(stats, (row + ChannelStatsKernel.MaxRow) * paddedHeadDim + c0, acc.Max, valid);
    }

    /// <summary>Writes the first <paramref name="valid"/> of the eight values and zeros for padded channels (as the reference).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Write(ArrayView<float> stats, long index, in Float8 v, int valid)
    {
        stats[index] = valid > 0 ? v.F0 : 0f;
        stats[index + 1] = valid > 1 ? v.F1 : 0f;
        stats[index + 2] = valid > 2 ? v.F2 : 0f;
        stats[index + 3] = valid > 3 ? v.F3 : 0f;
        stats[index + 4] = valid > 4 ? v.F4 : 0f;
        stats[index + 5] = valid > 5 ? v.F5 : 0f;
        stats[index + 6] = valid > 6 ? v.F6 : 0f;
        stats[index + 7] = valid > 7 ? v.F7 : 0f;
    }

    /// <summary>Running sum, minimum and maximum of eight channels.</summary>
    private struct ChannelAccumulator8
    {
        public Float8 Sum, Min, Max;

        public static ChannelAccumulator8 Empty => new()
        {
            Min = new Float8
            {
                F0 = float.MaxValue, F1 = float.MaxValue, F2 = float.MaxValue, F3 = float.MaxValue,
                F4 = float.MaxValue, F5 = float.MaxValue, F6 = float.MaxValue, F7 = float.MaxValue,
            },
            Max = new Float8
            {
                F0 = float.MinValue, F1 = float.MinValue, F2 = float.MinValue, F3 = float.MinValue,
                F4 = float.MinValue, F5 = float.MinValue, F6 = float.MinValue, F7 = float.MinValue,
            },
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(in Float8 x)
        {
            Sum.F0 += x.F0; Sum.F1 += x.F1; Sum.F2 += x.F2; Sum.F3 += x.F3;
            Sum.F4 += x.F4; Sum.F5 += x.F5; Sum.F6 += x.F6; Sum.F7 += x.F7;
            Min.F0 = Math.Min(Min.F0, x.F0); Min.F1 = Math.Min(Min.F1, x.F1); Min.F2 = Math.Min(Min.F2, x.F2); Min.F3 = Math.Min(Min.F3, x.F3);
            Min.F4 = Math.Min(Min.F4, x.F4); Min.F5 = Math.Min(Min.F5, x.F5); Min.F6 = Math.Min(Min.F6, x.F6); Min.F7 = Math.Min(Min.F7, x.F7);
            Max.F0 = Math.Max(Max.F0, x.F0); Max.F1 = Math.Max(Max.F1, x.F1); Max.F2 = Math.Max(Max.F2, x.F2); Max.F3 = Math.Max(Max.F3, x.F3);
            Max.F4 = Math.Max(Max.F4, x.F4); Max.F5 = Math.Max(Max.F5, x.F5); Max.F6 = Math.Max(Max.F6, x.F6); Max.F7 = Math.Max(Max.F7, x.F7);
        }
    }
}
