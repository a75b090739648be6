using SageAttn.Quantization.Formats;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Quantization.Reference;

/// <summary>
/// Plain C# versions of the quantizers, written from the algorithm (not from the kernels' thread
/// mapping), with the same float operation order where rounding depends on it. The kernels must
/// reproduce them exactly on the CPU accelerator.
/// </summary>
public static class QuantizationReference
{
    /// <summary>Per-chunk channel sums, minima and maxima in the layout of <see cref="ChannelStatsKernel"/>.</summary>
    public static float[] ChannelStats(HostTensor x, int paddedHeadDim)
    {
        int chunks = (x.Tokens + SageConstants.StatsChunkTokens - 1) / SageConstants.StatsChunkTokens;
        var stats = new float[x.Batch * x.Heads * chunks * 3 * paddedHeadDim];
        for (int b = 0; b < x.Batch; b++)
        for (int h = 0; h < x.Heads; h++)
        for (int chunk = 0; chunk < chunks; chunk++)
        for (int c = 0; c < x.HeadDim; c++)
        {
            float sum = 0, min = float.MaxValue, max = float.MinValue;
            int end = Math.Min(x.Tokens, (chunk + 1) * SageConstants.StatsChunkTokens);
            for (int n = chunk * SageConstants.StatsChunkTokens; n < end; n++)
            {
                float v = x[b, h, n, c];
                sum += v;
                min = Math.Min(min, v);
                max = Math.Max(max, v);
            }
            int row = ((b * x.Heads + h) * chunks + chunk) * 3;
            stats[row * paddedHeadDim + c] = sum;
            stats[(row + 1) * paddedHeadDim + c] = min;
            stats[(row + 2) * paddedHeadDim + c] = max;
        }
        return stats;
    }

    /// <summary>Per-channel mean over all tokens, [B, H, Dp] (zeros in padded channels).</summary>
    public static float[] ChannelMeans(HostTensor x, float[] stats, int paddedHeadDim)
    {
        int chunks = (x.Tokens + SageConstants.StatsChunkTokens - 1) / SageConstants.StatsChunkTokens;
        var means = new float[x.Batch * x.Heads * paddedHeadDim];
        for (int bh = 0; bh < x.Batch * x.Heads; bh++)
        for (int c = 0; c < x.HeadDim; c++)
        {
            float sum = 0;
            for (int chunk = 0; chunk < chunks; chunk++)
                sum += stats[((bh * chunks + chunk) * 3) * paddedHeadDim + c];
            means[bh * paddedHeadDim + c] = sum / x.Tokens;
        }
        return means;
    }

    /// <summary>INT8 quantization of Q (isKey false) or K, returning the values [B, H, Npad, Dp] and the per-thread scale slots.</summary>
    public static (sbyte[] Values, float[] Scales) QuantizeInt8(HostTensor x, bool isKey, QuantGranularity granularity,
        float[]? means, float scaleFold)
    {
        int dp = SageConstants.PaddedHeadDim(x.HeadDim);
        int nPad = SageConstants.RoundUp(x.Tokens, SageConstants.QTileRows);
        int tiles = nPad / SageConstants.QTileRows;
        int slotsPerTile = isKey ? SageConstants.KScaleSlotsPerBlock : SageConstants.QScaleSlotsPerTile;
        var values = new sbyte[x.Batch * x.Heads * nPad * dp];
        var scales = new float[x.Batch * x.Heads * tiles * slotsPerTile];
        for (int b = 0; b < x.Batch; b++)
        for (int h = 0; h < x.Heads; h++)
        for (int tile = 0; tile < tiles; tile++)
        {
            float Value(int localRow, int c)
            {
                int n = tile * SageConstants.QTileRows + localRow;
                if (n >= x.Tokens || c >= x.HeadDim) return 0;
                float v = x[b, h, n, c];
                return means is null ? v : v - means[(b * x.Heads + h) * dp + c];
            }
            var rowMax = new float[SageConstants.QTileRows];
            for (int r = 0; r < rowMax.Length; r++)
                for (int c = 0; c < dp; c++)
                    rowMax[r] = Math.Max(rowMax[r], Math.Abs(Value(r, c)));
            for (int r = 0; r < rowMax.Length; r++)
            {
                var group = ScaleGroup(r, isKey, granularity);
                float groupMax = Math.Max(group.Max(row => rowMax[row]), SageConstants.ScaleEpsilon);
                float inverse = SageConstants.Int8Max / groupMax;
                int slot = isKey ? ((r & 7) >> 1) : r / SageConstants.WarpRows * 8 + r % 8;
                scales[((b * x.Heads + h) * tiles + tile) * slotsPerTile + slot] = groupMax / SageConstants.Int8Max * scaleFold;
                int n = tile * SageConstants.QTileRows + r;
                for (int c = 0; c < dp; c++)
                {
                    int q = (int)MathF.Round(Value(r, c) * inverse, MidpointRounding.ToEven);
                    values[(((b * x.Heads + h) * nPad) + n) * dp + c] = (sbyte)Math.Clamp(q, -127, 127);
                }
            }
        }
        return (values, scales);
    }

    /// <summary>The tile rows that share one scale with row <paramref name="row"/> (see <see cref="QuantGranularity"/>).</summary>
    public static int[] ScaleGroup(int row, bool isKey, QuantGranularity granularity)
    {
        if (granularity == QuantGranularity.PerThread && isKey)
        {
            int t = (row & 7) >> 1;
            return Enumerable.Range(0, 8).SelectMany(j => new[] { 8 * j + 2 * t, 8 * j + 2 * t + 1 }).ToArray();
        }
        if (granularity == QuantGranularity.PerThread)
        {
            int first = row / SageConstants.WarpRows * SageConstants.WarpRows + row % 8;
            return [first, first + 8];
        }
        if (granularity == QuantGranularity.PerWarp && !isKey)
            return Enumerable.Range(row / SageConstants.WarpRows * SageConstants.WarpRows, SageConstants.WarpRows).ToArray();
        return Enumerable.Range(0, SageConstants.QTileRows).ToArray();
    }

    /// <summary>V transposed per channel as the kernel writes it: words [B, H, Dp, Npad / elementsPerWord], plus scales and means [B, H, Dp].</summary>
    public static (uint[] Words, float[] Scales, float[] Means) QuantizeV(HostTensor v, VFormat format, bool smooth)
    {
        int dp = SageConstants.PaddedHeadDim(v.HeadDim);
        int nPad = SageConstants.RoundUp(v.Tokens, SageConstants.KBlockKeys);
        var stats = ChannelStats(v, dp);
        var means = smooth ? ChannelMeans(v, stats, dp) : new float[v.Batch * v.Heads * dp];
        int chunks = (v.Tokens + SageConstants.StatsChunkTokens - 1) / SageConstants.StatsChunkTokens;
        var scales = new float[v.Batch * v.Heads * dp];
        int perWord = format == VFormat.Fp16 ? 2 : 4;
        var words = new uint[v.Batch * v.Heads * dp * nPad / perWord];
        for (int bh = 0; bh < v.Batch * v.Heads; bh++)
        for (int c = 0; c < dp; c++)
        {
            float mean = means[bh * dp + c];
            float amax = 0;
            if (c < v.HeadDim)
            {
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    int row = (bh * chunks + chunk) * 3;
                    amax = Math.Max(amax, Math.Max(Math.Abs(stats[(row + 1) * dp + c] - mean), Math.Abs(stats[(row + 2) * dp + c] - mean)));
                }
            }
            float scale = QuantizeVKernel.ChannelScale(amax, (int)format);
            scales[bh * dp + c] = scale;
            float inverse = 1f / scale;
            var scaled = new float[nPad];
            for (int n = 0; n < v.Tokens && c < v.HeadDim; n++)
                scaled[n] = (v[bh / v.Heads, bh % v.Heads, n, c] - mean) * inverse;
            for (int w = 0; w < nPad / perWord; w++)
            {
                uint word = 0;
                for (int i = 0; i < perWord; i++)
                {
                    int position = w * perWord + i;
                    if (format == VFormat.Fp16)
                        word |= (uint)HalfBits.FloatToFp16(scaled[position]) << (16 * i);
                    else
                        word |= (uint)E4M3.Encode(scaled[QuantizeVKernel.PermutedToken(position)]) << (8 * i);
                }
                words[(bh * dp + c) * (nPad / perWord) + w] = word;
            }
        }
        return (words, scales, means);
    }
}
