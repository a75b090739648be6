using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>Parameters of <see cref="QuantizeInt8Kernel"/>.</summary>
public struct QuantizeInt8Params
{
    /// <summary>Q or K in fp16/bf16.</summary>
    public StridedTensor Input;
    /// <summary>INT8 output [B, H, paddedTokens, Dp], zero in padded rows and channels.</summary>
    public ArrayView<sbyte> Output;
    /// <summary>Scales in the per-thread layout: Q [B, H, tiles · 32], K [B, H, blocks · 4].</summary>
    public ArrayView<float> Scales;
    /// <summary>Channel statistics of this tensor (for smoothing); unused when Smooth is 0.</summary>
    public ArrayView<float> Stats;
    public int StatsChunks;
    /// <summary>1: subtract the per-channel mean over tokens (K smoothing).</summary>
    public int Smooth;
    public int ElementType;
    public int PaddedHeadDim;
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
/// row and writing the scale slots; (3) the rows are quantized with round-to-nearest-even.</para>
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

        int tid = Group.IdxX, warp = tid / Lanes, lane = tid % Lanes;
        int tile = Grid.IdxX, h = Grid.IdxY, b = Grid.IdxZ;
        int tiles = Grid.DimX;
        int channelsPerLane = p.PaddedHeadDim / Lanes;
        int firstChannel = lane * channelsPerLane;

        // The smoothing mean of each channel, once per block (padded channels have mean 0).
        if (tid < p.PaddedHeadDim)
        {
            channelMean[tid] = p.Smooth != 0 && tid < p.Input.HeadDim
                ? ChannelStatsKernel.Mean(p.Stats, b, h, p.Input.Heads, p.StatsChunks, tid, p.PaddedHeadDim, p.Input.Tokens)
                : 0f;
        }
        Group.Barrier();

        // Phase 1: per-lane partial maxima of |x - mean|.
        for (int r = 0; r < SageConstants.WarpRows; r++)
        {
            int localRow = warp * SageConstants.WarpRows + r;
            int row = tile * Tile + localRow;
            float amax = 0;
            for (int i = 0; i < channelsPerLane; i++)
                amax = Math.Max(amax, Math.Abs(Value(p, channelMean, b, h, row, firstChannel + i)));
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
            long headBase = (long)(b * p.Input.Heads + h) * tiles;
            if (p.IsKey != 0)
            {
                // Slot t holds keys 8j + 2t, 8j + 2t + 1: rows 0, 2, 4, 6 represent slots 0..3.
                if (tid < 8 && (tid & 1) == 0)
                    p.Scales[(headBase + tile) * SageConstants.KScaleSlotsPerBlock + tid / 2] = scale;
            }
            else if ((tid % SageConstants.WarpRows) < 8)
            {
                // Slot g of warp slice w holds rows g and g + 8 of that slice.
                int slot = tid / SageConstants.WarpRows * 8 + tid % 8;
                p.Scales[(headBase + tile) * SageConstants.QScaleSlotsPerTile + slot] = scale;
            }
        }
        Group.Barrier();

        // Phase 3: quantize.
        for (int r = 0; r < SageConstants.WarpRows; r++)
        {
            int localRow = warp * SageConstants.WarpRows + r;
            int row = tile * Tile + localRow;
            float inverse = rowInverse[localRow];
            long outBase = ((long)(b * p.Input.Heads + h) * p.PaddedTokens + row) * p.PaddedHeadDim;
            for (int i = 0; i < channelsPerLane; i++)
            {
                int c = firstChannel + i;
                int q = DeviceConvert.RoundToNearestEven(Value(p, channelMean, b, h, row, c) * inverse);
                q = Math.Min(127, Math.Max(-127, q));
                p.Output[outBase + c] = (sbyte)q;
            }
        }
    }

    /// <summary>The (optionally mean-subtracted) input value, zero outside the real rows and channels.</summary>
    private static float Value(in QuantizeInt8Params p, ArrayView<float> channelMean, int b, int h, int row, int c)
    {
        if (row >= p.Input.Tokens || c >= p.Input.HeadDim)
            return 0;
        float x = DeviceConvert.ToFloat(p.Input.Data[p.Input.RowOffset(b, h, row) + c], p.ElementType);
        return p.Smooth != 0 ? x - channelMean[c] : x;
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
            int first = row / SageConstants.WarpRows * SageConstants.WarpRows + row % 8;
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
