using SageAttn.Backend.Engine;

namespace SageAttn.Tests.Engine;

/// <summary>
/// Float64 references written from the formulas, on plain arrays (no torch, no cache): RoPE of one head and
/// causal attention of one request over its whole history.
/// </summary>
public static class EngineReference
{
    /// <summary>
    /// RoPE of one head's <paramref name="x"/> (D channels) at <paramref name="position"/>: pair i (channels (i, i + D/2)
    /// for NeoX, (2i, 2i + 1) for interleaved) rotated by position · θ^(−2i/D).
    /// </summary>
    public static double[] Rope(ReadOnlySpan<double> x, int position, double theta, RopeStyle style)
    {
        int d = x.Length, half = d / 2;
        var y = new double[d];
        for (int i = 0; i < half; i++)
        {
            double angle = position * Math.Pow(theta, -2.0 * i / d);
            double c = Math.Cos(angle), s = Math.Sin(angle);
            int a = style == RopeStyle.Neox ? i : 2 * i;
            int b = style == RopeStyle.Neox ? i + half : 2 * i + 1;
            y[a] = x[a] * c - x[b] * s;
            y[b] = x[b] * c + x[a] * s;
        }

        return y;
    }

    /// <summary>
    /// Attention output [H·D] of one query token at <paramref name="position"/> of a request whose unrotated tokens are
    /// <paramref name="history"/> (row p = the packed qkv row of position p): the query attends keys 0 .. position.
    /// </summary>
    public static double[] AttendOne(IReadOnlyList<double[]> history, int position, AttentionBackendConfig config)
    {
        int h = config.NumHeads, hkv = config.KvHeads, d = config.HeadDim, group = h / hkv;
        var output = new double[h * d];
        var scores = new double[position + 1];
        for (int head = 0; head < h; head++)
        {
            int kvHead = head / group;
            var q = Rope(history[position].AsSpan(head * d, d), position, config.RopeTheta, config.RopeStyle);
            double max = double.NegativeInfinity;
            for (int j = 0; j <= position; j++)
            {
                var k = Rope(history[j].AsSpan((h + kvHead) * d, d), j, config.RopeTheta, config.RopeStyle);
                double dot = 0;
                for (int c = 0; c < d; c++) dot += q[c] * k[c];
                scores[j] = dot * config.Scale;
                max = Math.Max(max, scores[j]);
            }

            double sum = 0;
            for (int j = 0; j <= position; j++) sum += scores[j] = Math.Exp(scores[j] - max);
            for (int j = 0; j <= position; j++)
            {
                var v = history[j].AsSpan((h + hkv + kvHead) * d, d);
                for (int c = 0; c < d; c++) output[head * d + c] += scores[j] / sum * v[c];
            }
        }

        return output;
    }
}
