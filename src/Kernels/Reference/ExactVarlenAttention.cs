using SageAttn.Quantization.Reference;

namespace SageAttn.Kernels.Reference;

/// <summary>Float64 attention over packed sequences: <see cref="ExactAttention"/> run on each sequence alone.</summary>
public static class ExactVarlenAttention
{
    /// <summary>
    /// O [Tq, Hq, D] (contiguous) and the natural-log LSE [Hq, Tq] of packed sequences: sequence s has queries
    /// [cuQ[s], cuQ[s+1]) of <paramref name="q"/> and keys [cuK[s], cuK[s+1]) of <paramref name="k"/> and
    /// <paramref name="v"/>; when causal, query i sees key j iff j ≤ i + (Lk − Lq) (bottom-right).
    /// </summary>
    /// <param name="q">Packed queries as a [1, Hq, Tq, D] view.</param>
    /// <param name="k">Packed keys as a [1, Hkv, Tk, D] view.</param>
    /// <param name="v">Packed values, like <paramref name="k"/>.</param>
    /// <param name="cuQ">B + 1 query offsets.</param>
    /// <param name="cuK">B + 1 key offsets.</param>
    /// <param name="smScale">Softmax scale.</param>
    /// <param name="causal">Bottom-right causal mask per sequence.</param>
    public static (double[] Output, double[] Lse) Compute(HostTensor q, HostTensor k, HostTensor v, int[] cuQ, int[] cuK,
        double smScale, bool causal)
    {
        ArgumentNullException.ThrowIfNull(cuQ);
        ArgumentNullException.ThrowIfNull(cuK);
        if (cuQ.Length != cuK.Length || cuQ.Length < 2)
            throw new ArgumentException("cuQ and cuK must both hold B + 1 ≥ 2 offsets.", nameof(cuK));
        int d = q.HeadDim, hq = q.Heads, tq = q.Tokens;
        var output = new double[(long)tq * hq * d];
        var lse = new double[(long)hq * tq];
        for (int s = 0; s + 1 < cuQ.Length; s++)
        {
            int lq = cuQ[s + 1] - cuQ[s], lk = cuK[s + 1] - cuK[s];
            if (lq == 0)
                continue;
            var (o, l) = ExactAttention.Compute(Slice(q, cuQ[s], lq), Slice(k, cuK[s], lk), Slice(v, cuK[s], lk),
                smScale, causal, lk - lq);
            for (int h = 0; h < hq; h++)
            for (int i = 0; i < lq; i++)
            {
                Array.Copy(o, ((long)h * lq + i) * d, output, ((long)(cuQ[s] + i) * hq + h) * d, d);
                lse[(long)h * tq + cuQ[s] + i] = l[(long)h * lq + i];
            }
        }
        return (output, lse);
    }

    /// <summary>Tokens [start, start + length) of a packed [1, H, T, D] view as a contiguous [1, H, length, D] tensor.</summary>
    public static HostTensor Slice(HostTensor t, int start, int length)
    {
        ArgumentNullException.ThrowIfNull(t);
        var data = new ushort[(long)t.Heads * length * t.HeadDim];
        for (int h = 0; h < t.Heads; h++)
        for (int n = 0; n < length; n++)
            Array.Copy(t.Data, h * t.StrideHead + (start + n) * t.StrideToken, data, ((long)h * length + n) * t.HeadDim, t.HeadDim);
        return new HostTensor(data, 1, t.Heads, length, t.HeadDim, (long)t.Heads * length * t.HeadDim, (long)length * t.HeadDim, t.HeadDim, t.ElementType);
    }
}
