using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>Parameters of <see cref="QuantizeInt8Kernel"/>.</summary>
public struct QuantizeInt8Params
{
    /// <summary>Q or K in fp16/bf16 (packed: one [1, H, T, D] tensor).</summary>
    public StridedTensor Input;
    /// <summary>Dense mode, or the packed sequences of <see cref="Input"/>.</summary>
    public PackedSequences Sequences;
    /// <summary>INT8 output [B, H, paddedTokens, Dp] (packed: [1, H, paddedTokens, Dp]), zero in padded rows and channels.</summary>
    public ArrayView<sbyte> Output;
    /// <summary>Scales in the per-thread layout: Q [B, H, paddedTokens / 64 · 32], K [B, H, paddedTokens / 64 · 4].</summary>
    public ArrayView<float> Scales;
    /// <summary>Channel statistics of this tensor (for smoothing); unused when Smooth is 0.</summary>
    public ArrayView<float> Stats;
    public int StatsChunks;
    /// <summary>1: subtract the per-channel mean over tokens (K smoothing).</summary>
    public int Smooth;
    public int ElementType;
    public int PaddedHeadDim;
    /// <summary>Rows per head of the output: N padded to 64, or <see cref="PackedSequences.PaddedRows"/> when packed.</summary>
    public int PaddedTokens;
    /// <summary>A <see cref="QuantGranularity"/> value.</summary>
    public int Granularity;
    /// <summary>1 for K (scale slots per key block), 0 for Q (scale slots per warp slice).</summary>
    public int IsKey;
    /// <summary>Factor folded into the stored scale (sm_scale · log2 e for Q, 1 for K); the INT8 values do not see it.</summary>
    public float ScaleFold;
}

/// <summary>
/// Symmetric INT8 quantization of Q or K, one thread block per 64-row tile (a Q tile or a K block).
/// </summary>
/// <remarks>
/// <para>Three phases separated by barriers: (1) each warp takes 16 rows and each lane Dp / 32 adjacent
/// channels, writing per-lane partial |max| per row to shared memory; (2) 64 threads reduce a row each and
/// then the maximum over the row's scale group (which depends on the granularity), keeping 127 / amax per
/// row and writing the scale slots; (3) the staged rows are quantized with round-to-nearest-even. The input
/// is read once (staged as floats in shared memory between the phases).</para>
/// <para>Grid (tiles, H, B): packed inputs take b as the sequence; tiles past its end exit at once.</para>
/// <para>Every granularity writes the per-thread slot layout (coarser ones repeat a value), so the
/// attention kernel has one scale-loading path.</para>
/// </remarks>
public static class QuantizeInt8Kernel
{
    private const int Tile = SageConstants.QTileRows;
    private const int Lanes = 32;
    private const int MaxHeadDim = 128;

    public static void Run(QuantizeInt8Params p)
    {
        var partialMax = SharedMemory.Allocate<float>(Tile * Lanes);
        var rowAbsMax = SharedMemory.Allocate<float>(Tile);
        var rowInverse = SharedMemory.Allocate<float>(Tile);
        var channelMean = SharedMemory.Allocate<float>(MaxHeadDim);
        // The tile's values after smoothing, so the input is read from global memory once.
        var staged = SharedMemory.Allocate<float>(Tile * MaxHeadDim);

        int tid = Group.IdxX, warp = tid / Lanes, lane = tid & (Lanes - 1);
        int tile = Grid.IdxX, h = Grid.IdxY, b = Grid.IdxZ;
        var sequence = p.Sequences.Resolve(b, p.Input.Tokens);
        if (tile * Tile >= sequence.Length)
            return;
        int tilesPerHead = p.PaddedTokens / Tile;
        int channelsPerLane = p.PaddedHeadDim / Lanes;
        int firstChannel = lane * channelsPerLane;

        // The smoothing mean of each channel, once per block (padded channels have mean 0).
        if (tid < p.PaddedHeadDim)
        {
            channelMean[tid] = p.Smooth != 0 && tid < p.Input.HeadDim
                ? ChannelStatsKernel.Mean(p.Stats, b, h, p.Input.Heads, p.StatsChunks, tid, p.PaddedHeadDim, sequence.Length)
                : 0f;
        }
        Group.Barrier();

        // Phase 1: stage the values and keep per-lane partial maxima of |x - mean|.
        for (int r = 0; r < SageConstants.WarpRows; r++)
        {
            int localRow = warp * SageConstants.WarpRows + r;
            int row = tile * Tile + localRow;
            float amax = StageRow(p, channelMean, staged, sequence, h, row, localRow * p.PaddedHeadDim, firstChannel, channelsPerLane);
            partialMax[localRow * Lanes + lane] = amax;
        }
        Group.Barrier();

        // Phase 2a: one thread per row reduces the lanes.
        if (tid < Tile)
        {
            float amax = 0;
            for (int l = 0; l < Lanes; l++)
                amax = Math.Max(amax, partialMax[tid * Lanes + l]);
            rowAbsMax[tid] = amax;
        }
        Group.Barrier();

        // Phase 2b: the maximum over the row's scale group, the inverse scale, and the scale slots.
        if (tid < Tile)
        {
            float groupMax = Math.Max(GroupAbsMax(rowAbsMax, tid, p.Granularity, p.IsKey), SageConstants.ScaleEpsilon);
            rowInverse[tid] = SageConstants.Int8Max / groupMax;
            float scale = groupMax / SageConstants.Int8Max * p.ScaleFold;
            long headBase = (long)(sequence.Batch * p.Input.Heads + h) * tilesPerHead + sequence.PaddedStart / Tile;
            WriteScaleSlot(p.Scales, headBase + tile, tid, p.IsKey, scale);
        }
        Group.Barrier();

        // Phase 3: quantize; each lane writes its 2 or 4 adjacent bytes as one store.
        var output16 = p.Output.Cast<ushort>();
        var output32 = p.Output.Cast<uint>();
        for (int r = 0; r < SageConstants.WarpRows; r++)
        {
            int localRow = warp * SageConstants.WarpRows + r;
            int row = tile * Tile + localRow;
            float inverse = rowInverse[localRow];
            long outBase = ((long)(sequence.Batch * p.Input.Heads + h) * p.PaddedTokens + sequence.PaddedStart + row) * p.PaddedHeadDim + firstChannel;
            int s = localRow * p.PaddedHeadDim + firstChannel;
            uint packed = Quantize(staged[s], inverse) | (Quantize(staged[s + 1], inverse) << 8);
            if (channelsPerLane == 4)
                output32[outBase / 4] = packed | (Quantize(staged[s + 2], inverse) << 16) | (Quantize(staged[s + 3], inverse) << 24);
            else
                output16[outBase / 2] = (ushort)packed;
        }
    }

    /// <summary>Round to nearest even, clamp to ±127, as the two's-complement byte of an INT8 value.</summary>
    /// <remarks>The byte is cut with a mask, not a (byte)(sbyte) cast chain: ILGPU's PTX backend may widen
    /// such a chain with sign extension, spilling 0xFF bits into the neighbouring bytes: on the H100 that corrupted
    /// the INT8 tiles (relative L1 0.69) while the CPU accelerator was exact; the mask fixed it.</remarks>
    private static uint Quantize(float value, float inverse)
    {
        int q = DeviceConvert.RoundToNearestEven(value * inverse);
        return (uint)Math.Min(127, Math.Max(-127, q)) & 0xFFu;
    }

    /// <summary>
    /// Stages one row's 2 or 4 channels of this lane (minus the mean) and returns their largest magnitude.
    /// A full, 8- or 4-byte-aligned group is read with one vector load; tails and odd strides fall back to
    /// element loads.
    /// </summary>
    private static float StageRow(in QuantizeInt8Params p, ArrayView<float> channelMean, ArrayView<float> staged,
        in SequenceSpan sequence, int h, int row, int stagedRow, int firstChannel, int channelsPerLane)
    {
        float x0 = 0, x1 = 0, x2 = 0, x3 = 0;
        if (row < sequence.Length)
        {
            long offset = p.Input.RowOffset(sequence.Batch, h, sequence.TokenStart + row) + firstChannel;
            bool full = firstChannel + channelsPerLane <= p.Input.HeadDim;
            if (p.Input.Aligned8 != 0 && full && channelsPerLane == 4 && (offset & 3) == 0)
            {
                ulong bits = p.Input.Data.Cast<ulong>()[offset / 4];
                x0 = DeviceConvert.ToFloat((ushort)bits, p.ElementType);
                x1 = DeviceConvert.ToFloat((ushort)(bits >> 16), p.ElementType);
                x2 = DeviceConvert.ToFloat((ushort)(bits >> 32), p.ElementType);
                x3 = DeviceConvert.ToFloat((ushort)(bits >> 48), p.ElementType);
            }
            else if (p.Input.Aligned8 != 0 && full && channelsPerLane == 2 && (offset & 1) == 0)
            {
                uint bits = p.Input.Data.Cast<uint>()[offset / 2];
                x0 = DeviceConvert.ToFloat((ushort)bits, p.ElementType);
                x1 = DeviceConvert.ToFloat((ushort)(bits >> 16), p.ElementType);
            }
            else
            {
                x0 = Element(p, offset, firstChannel);
                x1 = Element(p, offset + 1, firstChannel + 1);
                if (channelsPerLane == 4)
                {
                    x2 = Element(p, offset + 2, firstChannel + 2);
                    x3 = Element(p, offset + 3, firstChannel + 3);
                }
            }
            if (p.Smooth != 0)
            {
                x0 = firstChannel < p.Input.HeadDim ? x0 - channelMean[firstChannel] : 0;
                x1 = firstChannel + 1 < p.Input.HeadDim ? x1 - channelMean[firstChannel + 1] : 0;
                if (channelsPerLane == 4)
                {
                    x2 = firstChannel + 2 < p.Input.HeadDim ? x2 - channelMean[firstChannel + 2] : 0;
                    x3 = firstChannel + 3 < p.Input.HeadDim ? x3 - channelMean[firstChannel + 3] : 0;
                }
            }
        }
        staged[stagedRow + firstChannel] = x0;
        staged[stagedRow + firstChannel + 1] = x1;
        float amax = Math.Max(Math.Abs(x0), Math.Abs(x1));
        if (channelsPerLane == 4)
        {
            staged[stagedRow + firstChannel + 2] = x2;
            staged[stagedRow + firstChannel + 3] = x3;
            amax = Math.Max(amax, Math.Max(Math.Abs(x2), Math.Abs(x3)));
        }
        return amax;
    }

    /// <summary>One input element, zero past the real channels.</summary>
    private static float Element(in QuantizeInt8Params p, long offset, int c) =>
        c < p.Input.HeadDim ? DeviceConvert.ToFloat(p.Input.Data[offset], p.ElementType) : 0f;

    /// <summary>
    /// Writes tile row <paramref name="row"/>'s scale into the per-thread slot layout the attention kernels read, if
    /// that row represents a slot: K — slot t holds keys 8j + 2t, 8j + 2t + 1, so rows 0, 2, 4, 6 represent slots 0..3;
    /// Q — slot g of warp slice w holds rows g and g + 8 of that slice, so rows 0..7 of each slice represent them.
    /// </summary>
    /// <param name="scales">The tensor's scale slots.</param>
    /// <param name="tileIndex">The tile's index among all tiles of the tensor (batch, head and tile folded).</param>
    /// <param name="row">A row of the tile, 0..63.</param>
    /// <param name="isKey">1 for K (slots per key block), 0 for Q (slots per warp slice).</param>
    /// <param name="scale">The row's dequantization scale.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteScaleSlot(ArrayView<float> scales, long tileIndex, int row, int isKey, float scale)
    {
        if (isKey != 0)
        {
            if (row < 8 && (row & 1) == 0)
                scales[tileIndex * SageConstants.KScaleSlotsPerBlock + row / 2] = scale;
        }
        else if ((row & (SageConstants.WarpRows - 1)) < 8)
        {
            scales[tileIndex * SageConstants.QScaleSlotsPerTile + row / SageConstants.WarpRows * 8 + (row & 7)] = scale;
        }
    }

    /// <summary>Maximum of the rows sharing a scale with tile row <paramref name="row"/>.</summary>
    public static float GroupAbsMax(ArrayView<float> rowAbsMax, int row, int granularity, int isKey)
    {
        float amax = 0;
        if (granularity == (int)QuantGranularity.PerThread && isKey != 0)
        {
            int t = (row & 7) >> 1;
            for (int j = 0; j < 8; j++)
                amax = Math.Max(amax, Math.Max(rowAbsMax[8 * j + 2 * t], rowAbsMax[8 * j + 2 * t + 1]));
        }
        else if (granularity == (int)QuantGranularity.PerThread)
        {
            int first = row / SageConstants.WarpRows * SageConstants.WarpRows + (row & 7);
            amax = Math.Max(rowAbsMax[first], rowAbsMax[first + 8]);
        }
        else if (granularity == (int)QuantGranularity.PerWarp && isKey == 0)
        {
            int first = row / SageConstants.WarpRows * SageConstants.WarpRows;
            for (int r = 0; r < SageConstants.WarpRows; r++)
                amax = Math.Max(amax, rowAbsMax[first + r]);
        }
        else
        {
            for (int r = 0; r < Tile; r++)
                amax = Math.Max(amax, rowAbsMax[r]);
        }
        return amax;
    }
}
