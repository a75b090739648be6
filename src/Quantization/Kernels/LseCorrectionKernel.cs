using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// The log-sum-exp correction of K smoothing: softmax ignores the shared term q·mean(K), the
/// log-sum-exp does not, so the kernel adds q·mean(K)·sm_scale per query row (exact inputs, fp32).
/// </summary>
/// <remarks>Grid (ceil(N / threads), Hq, B), one thread per query row, at least head_dim threads per block;
/// output [B, Hq, Nq] (packed: [Hq, Tq], the LSE layout). The block computes the kv head's channel means once
/// into shared memory. Packed inputs take b as the sequence of both Q and K.</remarks>
public static class LseCorrectionKernel
{
    private const int MaxHeadDim = 128;

    public static void Run(StridedTensor q, ArrayView<float> kStats, int kStatsChunks, int kHeads, int kTokens,
        int paddedHeadDim, int elementType, float smScale, ArrayView<float> correction,
        PackedSequences qSequences, PackedSequences kSequences)
    {
        var means = SharedMemory.Allocate<float>(MaxHeadDim);
        int row = Grid.IdxX * Group.DimX + Group.IdxX;
        int h = Grid.IdxY, b = Grid.IdxZ;
        int kvHead = h / (q.Heads / kHeads);
        var querySpan = qSequences.Resolve(b, q.Tokens);
        int keyLength = kSequences.Resolve(b, kTokens).Length;
        if (Group.IdxX < q.HeadDim)
            means[Group.IdxX] = ChannelStatsKernel.Mean(kStats, b, kvHead, kHeads, kStatsChunks, Group.IdxX, paddedHeadDim, keyLength);
        Group.Barrier();
        if (row >= querySpan.Length)
            return;
        long offset = q.RowOffset(querySpan.Batch, h, querySpan.TokenStart + row);
        float dot = 0;
        for (int c = 0; c < q.HeadDim; c++)
            dot += DeviceConvert.ToFloat(q.Data[offset + c], elementType) * means[c];
        correction[((long)querySpan.Batch * q.Heads + h) * q.Tokens + querySpan.TokenStart + row] = dot * smScale;
    }
}
