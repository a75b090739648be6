using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// The log-sum-exp correction of K smoothing: softmax ignores the shared term q·mean(K), the
/// log-sum-exp does not, so the kernel adds q·mean(K)·sm_scale per query row (exact inputs, fp32).
/// </summary>
/// <remarks>Grid (ceil(N / threads), Hq, B), one thread per query row; output [B, Hq, Nq].</remarks>
public static class LseCorrectionKernel
{
    public static void Run(StridedTensor q, ArrayView<float> kStats, int kStatsChunks, int kHeads, int kTokens,
        int paddedHeadDim, int elementType, float smScale, ArrayView<float> correction)
    {
        int row = Grid.IdxX * Group.DimX + Group.IdxX;
        int h = Grid.IdxY, b = Grid.IdxZ;
        if (row >= q.Tokens)
            return;
        int kvHead = h / (q.Heads / kHeads);
        long offset = q.RowOffset(b, h, row);
        float dot = 0;
        for (int c = 0; c < q.HeadDim; c++)
        {
            float mean = ChannelStatsKernel.Mean(kStats, b, kvHead, kHeads, kStatsChunks, c, paddedHeadDim, kTokens);
            dot += DeviceConvert.ToFloat(q.Data[offset + c], elementType) * mean;
        }
        correction[((long)b * q.Heads + h) * q.Tokens + row] = dot * smScale;
    }
}
