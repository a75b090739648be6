using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// O = softmax(Q Kᵀ · sm_scale) V with INT8 Q·Kᵀ and FP8 (or FP16) P·V on mma.sync tensor cores.
/// </summary>
/// <remarks>
/// <para>Glossary: <c>rowMax</c> = m, the running maximum of a row's logits (log2 domain);
/// <c>rowSum</c> = l, the running sum of exp2(logit − m + shift); <c>scores</c> = S then P for one 64-key
/// block; <c>lo</c>/<c>hi</c> = the two rows a lane owns, g and g + 8 of its warp's 16-row slice.</para>
/// <para>Thread block = 4 warps = 64 query rows (one Q tile); grid = (Q tiles, Hq, B). Each warp keeps its
/// Q fragments in registers and walks the key blocks: K (INT8, 64 × Dp) and V (transposed, Dp × 64)
/// are staged in shared memory with 16 bytes of padding per row so the fragment reads of a warp hit 32
/// different banks.</para>
/// <para>Per 64-key block: S = Q·Kᵀ (Dp/32 × 8 mma m16n8k32 s8), dequantized with one multiply
/// (q scale of row g × k scale of column group t), masked, online softmax in exp2, P packed from the
/// accumulator registers straight into the A operand of P·V, then P·V by the variant.</para>
/// </remarks>
public static class AttentionKernel
{
    /// <summary>Threads per block: 4 warps.</summary>
    public const int Threads = SageConstants.WarpsPerBlock * 32;

    private const int MaxHeadDim = 128;
    private const int KeysPerBlock = SageConstants.KBlockKeys;
    /// <summary>Shared-memory row padding in words (16 bytes): breaks the power-of-two row stride.</summary>
    private const int PadWords = 4;
    private const int KStrideMaxWords = MaxHeadDim / 4 + PadWords;
    /// <summary>A V row of 64 keys is 16 words in FP8 or 32 words in FP16.</summary>
    private const int VStrideMaxWords = 32 + PadWords;

    /// <summary>Kernel entry: index math, then the per-block tile steps.</summary>
    /// <param name="p">Tensors and sizes.</param>
    /// <param name="variant">An <see cref="AttentionVariant"/> value, fixed at compile time.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    public static void Run(AttentionParams p, SpecializedValue<int> variant, SpecializedValue<int> paddedHeadDim)
    {
        int dp = paddedHeadDim;
        bool fp16Pv = variant.Value == (int)AttentionVariant.QkInt8PvFp16;
        var kTile = SharedMemory.Allocate<uint>(KeysPerBlock * KStrideMaxWords);
        var vTile = SharedMemory.Allocate<uint>(MaxHeadDim * VStrideMaxWords);

        int tid = Group.IdxX, warp = tid / 32, lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        int qTile = Grid.IdxX, h = Grid.IdxY, b = Grid.IdxZ;
        int kvHead = h / (p.HeadsQ / p.HeadsKv);
        int rowLo = qTile * SageConstants.QTileRows + warp * SageConstants.WarpRows + g;
        int rowHi = rowLo + 8;
        int qkWordsPerRow = dp / 4;
        int kStride = qkWordsPerRow + PadWords;
        int vRowWords = fp16Pv ? KeysPerBlock / 2 : KeysPerBlock / 4;
        int vStride = vRowWords + PadWords;
        int vGlobalWordsPerRow = fp16Pv ? p.NkPad / 2 : p.NkPad / 4;
        long kvHeadIndex = (long)b * p.HeadsKv + kvHead;
        int kBlocks = p.NkPad / KeysPerBlock;

        var qFrag = LocalMemory.Allocate<uint>(MaxHeadDim / 32 * 4);
        LoadQFragments(p, qFrag, ((long)b * p.HeadsQ + h) * p.NqPad, rowLo, dp, t);
        float qScale = p.QScale[((long)b * p.HeadsQ + h) * (p.NqPad / SageConstants.QTileRows * SageConstants.QScaleSlotsPerTile)
            + qTile * SageConstants.QScaleSlotsPerTile + warp * 8 + g];

        var output = LocalMemory.Allocate<float>(MaxHeadDim / 8 * 4);
        for (int i = 0; i < dp / 2; i++)
            output[i] = 0;
        var scores = LocalMemory.Allocate<float>(KeysPerBlock / 8 * 4);
        var pFrag = LocalMemory.Allocate<uint>(16);
        float rowMaxLo = SageConstants.MaskedLogit, rowMaxHi = SageConstants.MaskedLogit;
        float rowSumLo = 0, rowSumHi = 0;
        float shift = fp16Pv ? 0f : SageConstants.Fp8Shift;

        // Causal: blocks past the tile's last visible key are skipped entirely.
        int visitBlocks = kBlocks;
        if (p.Causal != 0)
            visitBlocks = Math.Min(kBlocks, (qTile * SageConstants.QTileRows + SageConstants.QTileRows - 1 + p.CausalOffset) / KeysPerBlock + 1);

        for (int kb = 0; kb < visitBlocks; kb++)
        {
            for (int w = tid; w < KeysPerBlock * qkWordsPerRow; w += Threads)
            {
                int key = w / qkWordsPerRow, col = w % qkWordsPerRow;
                kTile[key * kStride + col] = p.K[(kvHeadIndex * p.NkPad + kb * KeysPerBlock + key) * qkWordsPerRow + col];
            }
            for (int w = tid; w < dp * vRowWords; w += Threads)
            {
                int c = w / vRowWords, col = w % vRowWords;
                vTile[c * vStride + col] = p.V[(kvHeadIndex * dp + c) * vGlobalWordsPerRow + kb * vRowWords + col];
            }
            Group.Barrier();

            float kScale = p.KScale[kvHeadIndex * kBlocks * SageConstants.KScaleSlotsPerBlock + kb * SageConstants.KScaleSlotsPerBlock + t];
            ComputeScores(p, qFrag, kTile, kStride, scores, dp, g, t, kb * KeysPerBlock, rowLo, rowHi, qScale * kScale);

            // Online softmax: new maxima, the factor that rescales what was accumulated so far, P.
            float blockMaxLo = scores[0], blockMaxHi = scores[2];
            for (int j = 0; j < 8; j++)
            {
                blockMaxLo = Math.Max(blockMaxLo, Math.Max(scores[j * 4], scores[j * 4 + 1]));
                blockMaxHi = Math.Max(blockMaxHi, Math.Max(scores[j * 4 + 2], scores[j * 4 + 3]));
            }
            blockMaxLo = QuadMax(blockMaxLo);
            blockMaxHi = QuadMax(blockMaxHi);
            float newMaxLo = Math.Max(rowMaxLo, blockMaxLo), newMaxHi = Math.Max(rowMaxHi, blockMaxHi);
            float rescaleLo = FastMath.Exp2(rowMaxLo - newMaxLo), rescaleHi = FastMath.Exp2(rowMaxHi - newMaxHi);
            rowMaxLo = newMaxLo;
            rowMaxHi = newMaxHi;
            float offsetLo = newMaxLo - shift, offsetHi = newMaxHi - shift;
            float blockSumLo = 0, blockSumHi = 0;
            for (int j = 0; j < 8; j++)
            {
                scores[j * 4] = FastMath.Exp2(scores[j * 4] - offsetLo);
                scores[j * 4 + 1] = FastMath.Exp2(scores[j * 4 + 1] - offsetLo);
                scores[j * 4 + 2] = FastMath.Exp2(scores[j * 4 + 2] - offsetHi);
                scores[j * 4 + 3] = FastMath.Exp2(scores[j * 4 + 3] - offsetHi);
                blockSumLo += scores[j * 4] + scores[j * 4 + 1];
                blockSumHi += scores[j * 4 + 2] + scores[j * 4 + 3];
            }
            // Each lane keeps the partial sum of its own columns; the quad is reduced once at the end.
            rowSumLo = rowSumLo * rescaleLo + blockSumLo;
            rowSumHi = rowSumHi * rescaleHi + blockSumHi;
            for (int n = 0; n < dp / 8; n++)
            {
                output[n * 4] *= rescaleLo;
                output[n * 4 + 1] *= rescaleLo;
                output[n * 4 + 2] *= rescaleHi;
                output[n * 4 + 3] *= rescaleHi;
            }

            if (fp16Pv)
                PvTile.AccumulateFp16(scores, pFrag, vTile, vStride, output, dp, g, t);
            else if (variant.Value == (int)AttentionVariant.QkInt8PvFp8Fp16Accum)
                PvTile.AccumulateFp8Fp16(scores, pFrag, vTile, vStride, output, dp, g, t);
            else
                PvTile.AccumulateFp8Fp32(scores, pFrag, vTile, vStride, output, dp, g, t);
            Group.Barrier();
        }

        rowSumLo += Warp.ShuffleXor(rowSumLo, 1);
        rowSumLo += Warp.ShuffleXor(rowSumLo, 2);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 1);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 2);
        WriteOutput(p, output, kvHeadIndex * dp, b, h, rowLo, dp, t, 0, 1f / rowSumLo);
        WriteOutput(p, output, kvHeadIndex * dp, b, h, rowHi, dp, t, 2, 1f / rowSumHi);
        if (p.WriteLse != 0 && t == 0)
        {
            WriteLse(p, b, h, rowLo, rowSumLo, rowMaxLo - shift);
            WriteLse(p, b, h, rowHi, rowSumHi, rowMaxHi - shift);
        }
    }

    /// <summary>A registers of Q for every k32 step: rows g and g + 8, bytes 4t.. and 16 + 4t.. of the step.</summary>
    private static void LoadQFragments(in AttentionParams p, ArrayView<uint> qFrag, long headRowBase, int rowLo, int dp, int t)
    {
        int wordsPerRow = dp / 4;
        long lo = (headRowBase + rowLo) * wordsPerRow, hi = (headRowBase + rowLo + 8) * wordsPerRow;
        for (int ks = 0; ks < dp / 32; ks++)
        {
            qFrag[ks * 4] = p.Q[lo + ks * 8 + t];
            qFrag[ks * 4 + 1] = p.Q[hi + ks * 8 + t];
            qFrag[ks * 4 + 2] = p.Q[lo + ks * 8 + 4 + t];
            qFrag[ks * 4 + 3] = p.Q[hi + ks * 8 + 4 + t];
        }
    }

    /// <summary>
    /// S = Q·Kᵀ for 16 rows × 64 keys, dequantized to log2-domain logits, masked keys set to
    /// <see cref="SageConstants.MaskedLogit"/>. scores[4j + i] is accumulator element i of key tile j.
    /// </summary>
    private static void ComputeScores(in AttentionParams p, ArrayView<uint> qFrag, ArrayView<uint> kTile, int kStride,
        ArrayView<float> scores, int dp, int g, int t, int firstKey, int rowLo, int rowHi, float dequant)
    {
        for (int j = 0; j < 8; j++)
        {
            var acc = default(Int4Frag);
            int kRow = (8 * j + g) * kStride;
            for (int ks = 0; ks < dp / 32; ks++)
            {
                AFrag a;
                a.R0 = qFrag[ks * 4]; a.R1 = qFrag[ks * 4 + 1]; a.R2 = qFrag[ks * 4 + 2]; a.R3 = qFrag[ks * 4 + 3];
                BFrag bf;
                bf.R0 = kTile[kRow + ks * 8 + t];
                bf.R1 = kTile[kRow + ks * 8 + 4 + t];
                TensorCore.MmaS8(ref acc, a, bf);
            }
            int key = firstKey + 8 * j + 2 * t;
            scores[j * 4] = Visible(p, key, rowLo) ? acc.C0 * dequant : SageConstants.MaskedLogit;
            scores[j * 4 + 1] = Visible(p, key + 1, rowLo) ? acc.C1 * dequant : SageConstants.MaskedLogit;
            scores[j * 4 + 2] = Visible(p, key, rowHi) ? acc.C2 * dequant : SageConstants.MaskedLogit;
            scores[j * 4 + 3] = Visible(p, key + 1, rowHi) ? acc.C3 * dequant : SageConstants.MaskedLogit;
        }
    }

    private static bool Visible(in AttentionParams p, int key, int row) =>
        key < p.Nk && (p.Causal == 0 || key <= row + p.CausalOffset);

    /// <summary>Maximum over the 4 lanes (t = 0..3) that share a row.</summary>
    private static float QuadMax(float v)
    {
        v = Math.Max(v, Warp.ShuffleXor(v, 1));
        return Math.Max(v, Warp.ShuffleXor(v, 2));
    }

    /// <summary>O = acc / l · v_scale (+ v_mean) for one of the lane's rows, columns 8n + 2t and 8n + 2t + 1.</summary>
    private static void WriteOutput(in AttentionParams p, ArrayView<float> output, long channelBase, int b, int h,
        int row, int dp, int t, int element, float inverseSum)
    {
        if (row >= p.Nq)
            return;
        long rowOffset = b * p.OStrideBatch + h * p.OStrideHead + row * p.OStrideToken;
        for (int n = 0; n < dp / 8; n++)
        {
            for (int i = 0; i < 2; i++)
            {
                int c = 8 * n + 2 * t + i;
                if (c >= p.HeadDim)
                    continue;
                float value = output[n * 4 + element + i] * inverseSum * p.VScale[channelBase + c];
                if (p.SmoothV != 0)
                    value += p.VMean[channelBase + c];
                p.O[rowOffset + c] = DeviceConvert.FromFloat(value, p.OutputType);
            }
        }
    }

    /// <summary>Natural-log LSE: l · 2^(m − shift) = Σ 2^logit, plus the K-smoothing term.</summary>
    private static void WriteLse(in AttentionParams p, int b, int h, int row, float rowSum, float rowMaxUnshifted)
    {
        if (row >= p.Nq)
            return;
        long index = ((long)b * p.HeadsQ + h) * p.Nq + row;
        float lse = (FastMath.Log2(rowSum) + rowMaxUnshifted) * SageConstants.Ln2;
        if (p.HasLseCorrection != 0)
            lse += p.LseCorrection[index];
        p.Lse[index] = lse;
    }
}
