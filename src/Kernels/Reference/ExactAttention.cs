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
        var output = new double[q.Batch * q.Heads * q.Tokens * d];
        var lse = new double[q.Batch * q.Heads * q.Tokens];
        Parallel.For(0, q.Batch * q.Heads, () => (new double[k.Tokens], new double[d]), (bh, _, scratch) =>
        {
            var (row, qr) = scratch;
            int b = bh / q.Heads, h = bh % q.Heads, kvh = h / group;
            for (int i = 0; i < q.Tokens; i++)
            {
                for (int c = 0; c < d; c++) qr[c] = q[b, h, i, c];
                double max = double.NegativeInfinity;
                int visible = causal ? Math.Min(k.Tokens, i + causalOffset + 1) : k.Tokens;
                for (int j = 0; j < visible; j++)
                {
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += qr[c] * k[b, kvh, j, c];
                    row[j] = dot * smScale;
                    max = Math.Max(max, row[j]);
                }
                double sum = 0;
                for (int j = 0; j < visible; j++) { row[j] = Math.Exp(row[j] - max); sum += row[j]; }
                long outBase = ((long)bh * q.Tokens + i) * d;
                for (int j = 0; j < visible; j++)
                {
                    double p = row[j] / sum;
                    for (int c = 0; c < d; c++) output[outBase + c] += p * v[b, kvh, j, c];
                }
                lse[(long)bh * q.Tokens + i] = max + Math.Log(sum);
            }
            return scratch;
        }, _ => { });
        return (output, lse);
    }
}
