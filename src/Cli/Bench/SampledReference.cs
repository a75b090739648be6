namespace SageAttn.Cli.Bench;

/// <summary>
/// Attention in float64 on the host for a sample of query rows of one head: the ground truth of the benchmark's
/// accuracy columns (a full float64 reference at 32K tokens would take minutes; a few rows of two heads do not).
/// </summary>
public static class SampledReference
{
    /// <summary><paramref name="count"/> query rows spread evenly over 0 .. n − 1, first and last included.</summary>
    public static int[] Rows(int n, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (count == 1 || n == 1)
            return [n - 1];
        return Enumerable.Range(0, count).Select(i => (int)Math.Round((double)i * (n - 1) / (count - 1))).Distinct().ToArray();
    }

    /// <summary>
    /// softmax(q Kᵀ · smScale) V for the given query rows of one head, in float64, top-left causal when asked
    /// (query i sees keys 0..i, as torch's is_causal with Nq = Nk).
    /// </summary>
    /// <param name="q">The sampled query rows, [rows.Length, d].</param>
    /// <param name="k">The head's keys, [n, d].</param>
    /// <param name="v">The head's values, [n, d].</param>
    /// <param name="rows">Token index of each sampled query row (for the causal mask).</param>
    /// <returns>[rows.Length, d].</returns>
    /// <exception cref="ArgumentException">Sizes do not match.</exception>
    public static double[] Attention(float[] q, float[] k, float[] v, int d, int[] rows, bool causal, double smScale)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(rows);
        int n = k.Length / d;
        if (q.Length != rows.Length * d || k.Length != n * d || v.Length != k.Length)
            throw new ArgumentException($"q must be [{rows.Length}, {d}], k and v [{n}, {d}].", nameof(q));
        var output = new double[rows.Length * d];
        Parallel.For(0, rows.Length, r =>
        {
            int visible = causal ? Math.Min(n, rows[r] + 1) : n;
            var logits = new double[visible];
            double max = double.NegativeInfinity;
            for (int j = 0; j < visible; j++)
            {
                double dot = 0;
                for (int c = 0; c < d; c++)
                    dot += (double)q[r * d + c] * k[j * d + c];
                logits[j] = dot * smScale;
                max = Math.Max(max, logits[j]);
            }
            double sum = 0;
            for (int j = 0; j < visible; j++)
            {
                logits[j] = Math.Exp(logits[j] - max);
                sum += logits[j];
            }
            for (int j = 0; j < visible; j++)
            {
                double p = logits[j] / sum;
                for (int c = 0; c < d; c++)
                    output[r * d + c] += p * v[j * d + c];
            }
        });
        return output;
    }
}
