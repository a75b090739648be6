using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Quantization.Reference;

namespace SageAttn.Tests.Support;

/// <summary>Fresh random attention inputs and the error metrics the tests assert on.</summary>
public static class TestData
{
    /// <summary>
    /// A [B, H, N, D] tensor of randn values (times <paramref name="scale"/>) stored as fp16/bf16 bits, in
    /// HND or NHD layout, plus an optional per-channel offset of <paramref name="channelOffset"/>·randn
    /// (the outlier-channel pattern of real K).
    /// </summary>
    public static HostTensor Randn(Random random, int batch, int heads, int tokens, int headDim, TensorElementType type,
        bool nhd = false, float scale = 1f, float channelOffset = 0f)
    {
        var offsets = new float[heads * headDim];
        for (int i = 0; i < offsets.Length; i++) offsets[i] = channelOffset * Gaussian(random);
        var data = new ushort[batch * heads * tokens * headDim];
        long sb = (long)heads * tokens * headDim;
        long sh = nhd ? headDim : (long)tokens * headDim;
        long sn = nhd ? (long)heads * headDim : headDim;
        for (int b = 0; b < batch; b++)
        for (int h = 0; h < heads; h++)
        for (int n = 0; n < tokens; n++)
        for (int c = 0; c < headDim; c++)
            data[b * sb + h * sh + n * sn + c] = HalfBits.FromFloat(scale * Gaussian(random) + offsets[h * headDim + c], type);
        return new HostTensor(data, batch, heads, tokens, headDim, sb, sh, sn, type);
    }

    public static float Gaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    /// <summary>cu_seqlens of packed sequences of <paramref name="lengths"/> tokens: 0 and the running sums.</summary>
    public static int[] Offsets(int[] lengths)
    {
        var cu = new int[lengths.Length + 1];
        for (int i = 0; i < lengths.Length; i++) cu[i + 1] = cu[i] + lengths[i];
        return cu;
    }

    /// <summary>An output buffer poisoned with NaN so any element the kernel fails to write is caught.</summary>
    public static ushort[] Poisoned(int length) => Enumerable.Repeat((ushort)0x7E00, length).ToArray();

    /// <summary>Relative L1 (Σ|x − ref| / Σ|ref|), cosine similarity and RMSE.</summary>
    public static (double RelL1, double Cosine, double Rmse) Compare(IReadOnlyList<double> actual, IReadOnlyList<double> reference)
    {
        Assert.Equal(reference.Count, actual.Count);
        double diff = 0, refAbs = 0, dot = 0, aa = 0, rr = 0, sq = 0;
        for (int i = 0; i < actual.Count; i++)
        {
            double a = actual[i], r = reference[i];
            Assert.False(double.IsNaN(a) || double.IsInfinity(a), $"element {i} is {a}: not written or overflowed");
            diff += Math.Abs(a - r); refAbs += Math.Abs(r);
            dot += a * r; aa += a * a; rr += r * r; sq += (a - r) * (a - r);
        }
        return (diff / refAbs, dot / Math.Sqrt(aa * rr), Math.Sqrt(sq / actual.Count));
    }
}
