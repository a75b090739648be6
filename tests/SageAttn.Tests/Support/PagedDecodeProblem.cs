using SageAttn.Quantization;
using SageAttn.Quantization.Formats;

namespace SageAttn.Tests.Support;

/// <summary>
/// A random paged-decode batch: queries [B, Hq, D], a cache [NumBlocks, Hkv, BlockSize, D] whose blocks are handed
/// out to the requests in shuffled, non-contiguous order, block tables padded with −1, and the float64 reference.
/// </summary>
/// <remarks>
/// Unused cache rows (past each request's length, and blocks nobody owns) hold NaN, so a kernel that reads a row it
/// should not poisons its output. Block-table padding is −1, as an engine leaves it.
/// </remarks>
public sealed class PagedDecodeProblem
{
    public required int Batch, HeadsQ, HeadsKv, HeadDim, BlockSize, NumBlocks, MaxBlocksPerSeq;
    public required TensorElementType Type;
    public required int[] SeqLens;
    public required int[] BlockTables;
    public required ushort[] Q, KCache, VCache;

    public int MaxSeqLen => SeqLens.Max();

    /// <summary>Builds a problem; <paramref name="keyOffset"/> adds a per-channel offset to K (outlier channels).</summary>
    public static PagedDecodeProblem Create(Random random, int[] seqLens, int headsQ, int headsKv, int headDim, int blockSize,
        TensorElementType type, float keyOffset = 0f)
    {
        int batch = seqLens.Length;
        int[] blocksPer = seqLens.Select(n => (n + blockSize - 1) / blockSize).ToArray();
        int maxBlocks = Math.Max(1, blocksPer.Max() + 1);
        int numBlocks = blocksPer.Sum() + 3; // spare blocks nobody owns
        var order = Enumerable.Range(0, numBlocks).OrderBy(_ => random.Next()).ToArray();
        var tables = Enumerable.Repeat(-1, batch * maxBlocks).ToArray();
        int next = 0;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < blocksPer[b]; i++)
                tables[b * maxBlocks + i] = order[next++];

        ushort nan = HalfBits.FromFloat(float.NaN, type);
        long cacheElements = (long)numBlocks * headsKv * blockSize * headDim;
        var k = Enumerable.Repeat(nan, (int)cacheElements).ToArray();
        var v = Enumerable.Repeat(nan, (int)cacheElements).ToArray();
        var offsets = Enumerable.Range(0, headsKv * headDim).Select(_ => keyOffset * TestData.Gaussian(random)).ToArray();
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < seqLens[b]; j++)
            {
                int block = tables[b * maxBlocks + j / blockSize];
                for (int h = 0; h < headsKv; h++)
                {
                    long row = (((long)block * headsKv + h) * blockSize + j % blockSize) * headDim;
                    for (int c = 0; c < headDim; c++)
                    {
                        k[row + c] = HalfBits.FromFloat(TestData.Gaussian(random) + offsets[h * headDim + c], type);
                        v[row + c] = HalfBits.FromFloat(TestData.Gaussian(random), type);
                    }
                }
            }
        var q = Enumerable.Range(0, batch * headsQ * headDim).Select(_ => HalfBits.FromFloat(TestData.Gaussian(random), type)).ToArray();
        return new PagedDecodeProblem
        {
            Batch = batch, HeadsQ = headsQ, HeadsKv = headsKv, HeadDim = headDim, BlockSize = blockSize, NumBlocks = numBlocks,
            MaxBlocksPerSeq = maxBlocks, Type = type, SeqLens = seqLens, BlockTables = tables, Q = q, KCache = k, VCache = v,
        };
    }

    /// <summary>
    /// Exact attention in float64: each request's keys gathered through its block table. O [B, Hq, D]; LSE [B, Hq] natural
    /// log. A request with no keys gets O = 0 and LSE = −∞ (the documented contract).
    /// </summary>
    public (double[] Output, double[] Lse) Reference(double smScale)
    {
        int group = HeadsQ / HeadsKv;
        var output = new double[Batch * HeadsQ * HeadDim];
        var lse = new double[Batch * HeadsQ];
        // Rows in parallel: the long-context GPU cases reach 10⁹ multiply-adds.
        Parallel.For(0, Batch * HeadsQ, bh =>
        {
            int b = bh / HeadsQ, h = bh % HeadsQ;
            int n = SeqLens[b], kvh = h / group;
            var q = Enumerable.Range(0, HeadDim).Select(c => ToDouble(Q[bh * HeadDim + c])).ToArray();
            var logits = new double[n];
            double max = double.NegativeInfinity;
            for (int j = 0; j < n; j++)
            {
                long row = KeyRow(b, kvh, j);
                double dot = 0;
                for (int c = 0; c < HeadDim; c++)
                    dot += q[c] * ToDouble(KCache[row + c]);
                logits[j] = dot * smScale;
                max = Math.Max(max, logits[j]);
            }
            double sum = 0;
            for (int j = 0; j < n; j++) { logits[j] = Math.Exp(logits[j] - max); sum += logits[j]; }
            for (int j = 0; j < n; j++)
            {
                long row = KeyRow(b, kvh, j);
                double p = logits[j] / sum;
                for (int c = 0; c < HeadDim; c++)
                    output[bh * HeadDim + c] += p * ToDouble(VCache[row + c]);
            }
            lse[bh] = n == 0 ? double.NegativeInfinity : max + Math.Log(sum);
        });
        return (output, lse);
    }

    private long KeyRow(int b, int kvHead, int j)
    {
        int block = BlockTables[b * MaxBlocksPerSeq + j / BlockSize];
        return (((long)block * HeadsKv + kvHead) * BlockSize + j % BlockSize) * HeadDim;
    }

    private double ToDouble(ushort bits) => HalfBits.ToFloat(bits, Type);
}
