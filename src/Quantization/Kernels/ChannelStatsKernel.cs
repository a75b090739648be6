using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// Per-channel partial statistics (sum, min, max) over chunks of <see cref="SageConstants.StatsChunkTokens"/>
/// tokens, for K smoothing (mean of K) and the V scales (absolute maximum, optionally around the mean).
/// </summary>
/// <remarks>
/// Output layout: stats[((b · H + h) · chunks + chunk) · 3 + {0: sum, 1: min, 2: max}) · Dp + c], padded
/// channels (c ≥ headDim) hold zeros. Partials are combined later in chunk order, so the result is
/// deterministic (no atomics). Grid (chunks, H, B); one thread per padded channel, consecutive threads on
/// consecutive channels so every token row is one coalesced read. Packed (varlen) inputs: b is the
/// sequence and the chunks cover its own tokens (<see cref="PackedSequences"/>); chunks past its end hold zeros.
/// </remarks>
public static class ChannelStatsKernel
{
    public const int SumRow = 0, MinRow = 1, MaxRow = 2, RowsPerChunk = 3;

    public static void Run(StridedTensor input, ArrayView<float> stats, int elementType, int paddedHeadDim, PackedSequences sequences)
    {
        int c = Group.IdxX;
        int chunk = Grid.IdxX, h = Grid.IdxY, b = Grid.IdxZ;
        int chunks = Grid.DimX;
        var sequence = sequences.Resolve(b, input.Tokens);
        int first = chunk * SageConstants.StatsChunkTokens;
        int end = Math.Min(sequence.Length, first + SageConstants.StatsChunkTokens);

        float sum = 0, min = 0, max = 0;
        if (c < input.HeadDim && first < end)
        {
            min = float.MaxValue;
            max = float.MinValue;
            for (int n = first; n < end; n++)
            {
                float v = DeviceConvert.ToFloat(input.Data[input.RowOffset(sequence.Batch, h, sequence.TokenStart + n) + c], elementType);
                sum += v;
                if (v < min) min = v;
                if (v > max) max = v;
            }
        }
        long row = ((long)(b * input.Heads + h) * chunks + chunk) * RowsPerChunk;
        stats[(row + SumRow) * paddedHeadDim + c] = sum;
        stats[(row + MinRow) * paddedHeadDim + c] = min;
        stats[(row + MaxRow) * paddedHeadDim + c] = max;
    }

    /// <summary>Mean of channel c over all tokens: chunk sums added in chunk order, divided by the token count (0 for no tokens).</summary>
    public static float Mean(ArrayView<float> stats, int b, int h, int heads, int chunks, int c, int paddedHeadDim, int tokens)
    {
        float sum = 0;
        long baseRow = (long)(b * heads + h) * chunks;
        int used = UsedChunks(chunks, tokens);
        for (int chunk = 0; chunk < used; chunk++)
            sum += stats[((baseRow + chunk) * RowsPerChunk + SumRow) * paddedHeadDim + c];
        return tokens > 0 ? sum / tokens : 0f;
    }

    /// <summary>Largest |x - center| of channel c over all tokens, from the chunk minima and maxima.</summary>
    /// <remarks>Float subtraction is monotonic, so the extreme of |x - center| is reached at the minimum or the maximum.</remarks>
    public static float AbsMaxAround(ArrayView<float> stats, int b, int h, int heads, int chunks, int c, int paddedHeadDim, int tokens, float center)
    {
        float amax = 0;
        long baseRow = (long)(b * heads + h) * chunks;
        int used = UsedChunks(chunks, tokens);
        for (int chunk = 0; chunk < used; chunk++)
        {
            float lo = stats[((baseRow + chunk) * RowsPerChunk + MinRow) * paddedHeadDim + c] - center;
            float hi = stats[((baseRow + chunk) * RowsPerChunk + MaxRow) * paddedHeadDim + c] - center;
            amax = Math.Max(amax, Math.Max(Math.Abs(lo), Math.Abs(hi)));
        }
        return amax;
    }

    /// <summary>The chunks that hold tokens: a packed sequence shorter than the longest one uses only its first chunks.</summary>
    public static int UsedChunks(int chunks, int tokens) =>
        Math.Min(chunks, (Math.Max(tokens, 0) + SageConstants.StatsChunkTokens - 1) / SageConstants.StatsChunkTokens);
}
