using SageAttn.Quantization.Reference;

namespace SageAttn.Kernels.Reference;

/// <summary>Attention in float64 on the host: the ground truth every kernel is measured against.</summary>
public static class ExactAttention
{
    /// <summary>
    /// O [B, Hq, Nq, D] (contiguous) and the natural-log LSE [B, Hq, Nq] of softmax(Q Kᵀ · smScale) V, with
    /// grouped-query heads (head h reads kv head h / (Hq / Hkv)) and, when causal, key j visible to query i
    /// iff j ≤ i + causalOffset.
    /// </summary>
    public static (double[] Output, double[] Lse) Compute(HostTensor q, HostTensor k, HostTensor v, double smScale,
        bool causal, int causalOffset)
    {
        int d = q.HeadDim, group = q.Heads / k.Heads;
        double[] qd = Decode(q), kd = Decode(k), vd = Decode(v);
        var output = new double[q.Batch * q.Heads * q.Tokens * d];
        var lse = new double[q.Batch * q.Heads * q.Tokens];
        long rows = (long)q.Batch * q.Heads * q.Tokens;
        Parallel.For(0L, rows, () => new double[k.Tokens], (row, _, logits) =>
        {
            int i = (int)(row % q.Tokens);
            int bh = (int)(row / q.Tokens), b = bh / q.Heads, h = bh % q.Heads;
            long kvBase = ((long)b * k.Heads + h / group) * k.Tokens * d;
            long qBase = row * d;
            int visible = causal ? Math.Min(k.Tokens, i + causalOffset + 1) : k.Tokens;
            double max = double.NegativeInfinity;
            for (int j = 0; j < visible; j++)
            {
                double dot = 0;
                long kRow = kvBase + (long)j * d;
                for (int c = 0; c < d; c++) dot += qd[qBase + c] * kd[kRow + c];
                logits[j] = dot * smScale;
                max = Math.Max(max, logits[j]);
            }
            double sum = 0;
            for (int j = 0; j < visible; j++) { logits[j] = Math.Exp(logits[j] - max); sum += logits[j]; }
            for (int j = 0; j < visible; j++)
            {
                double p = logits[j] / sum;
                long vRow = kvBase + (long)j * d;
                for (int c = 0; c < d; c++) output[qBase + c] += p * vd[vRow + c];
            }
            lse[row] = max + Math.Log(sum);
            return logits;
        }, _ => { });
        return (output, lse);
    }

    /// <summary>The tensor as contiguous [B, H, N, D] doubles.</summary>
    private static double[] Decode(HostTensor t)
    {
        var result = new double[(long)t.Batch * t.Heads * t.Tokens * t.HeadDim];
        Parallel.For(0, t.Batch * t.Heads, bh =>
        {
            int b = bh / t.Heads, h = bh % t.Heads;
            for (int n = 0; n < t.Tokens; n++)
                for (int c = 0; c < t.HeadDim; c++)
                    result[((long)bh * t.Tokens + n) * t.HeadDim + c] = t[b, h, n, c];
        });
        return result;
    }
}
