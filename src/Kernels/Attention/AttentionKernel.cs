using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// O = softmax(Q Kᵀ · sm_scale) V with INT8 Q·Kᵀ and FP8 (or FP16) P·V on mma.sync tensor cores.
/// </summary>
/// <remarks>
/// <para>Glossary: <c>rowMax</c> = m, the running maximum of a row's logits (log2 domain);
/// <c>rowSum</c> = l, the running sum of exp2(logit − m + shift); <c>scores</c> = S then P for one 64-key
/// block; <c>lo</c>/<c>hi</c> = the two rows a lane owns, g and g + 8 of its warp's 16-row slice.</para>
/// <para>Thread block = 4 warps = 64 query rows (one Q tile); grid = (Q tiles, Hq, B). Each warp keeps its
/// Q fragments, scores and output accumulator in registers (the unrolled <see cref="Tile"/> steps) and walks
/// the key blocks: K (INT8, 64 × Dp) and V (transposed, Dp × 64) are staged in shared memory with 16 bytes
/// of padding per row so the fragment reads of a warp hit 32 different banks.</para>
/// <para>Per 64-key block: S = Q·Kᵀ, dequantized with one multiply (q scale of row g × k scale of column
/// group t), masked only where the block crosses Nk or the causal diagonal, online softmax in exp2, P packed
/// from the score registers straight into the A operand of P·V, then P·V by the variant.</para>
/// <para>One body serves dense inputs (<see cref="Run"/>) and packed sequences (<see cref="VarlenAttentionKernel"/>):
/// each block resolves its sequence's spans first (<see cref="PackedSequences"/>), then the tile algebra is the same.
/// The mode is a compile-time constant of each entry point, so the dense kernel keeps its registers.</para>
/// </remarks>
public static class AttentionKernel
{
    /// <summary>Threads per block: 4 warps.</summary>
    public const int Threads = SageConstants.WarpsPerBlock * 32;

    private const int MaxHeadDim = 128;
    private const int KeysPerBlock = SageConstants.KBlockKeys;
    /// <summary>Shared-memory row padding in words (16 bytes): breaks the power-of-two row stride and keeps rows 16-byte aligned.</summary>
    private const int PadWords = 4;
    private const int KStrideMaxWords = MaxHeadDim / 4 + PadWords;
    /// <summary>A V row of 64 keys is 16 words in FP8 or 32 words in FP16.</summary>
    private const int VStrideMaxWords = 32 + PadWords;

    /// <summary>Kernel entry: index math, then the per-block tile steps.</summary>
    /// <param name="p">Tensors and sizes.</param>
    /// <param name="variant">An <see cref="AttentionVariant"/> value, fixed at compile time.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    public static void Run(AttentionParams p, SpecializedValue<int> variant, SpecializedValue<int> paddedHeadDim) =>
        Attend(p, variant, paddedHeadDim, packed: false);

    /// <summary>The kernel body; <paramref name="packed"/> is a constant of each entry point.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Attend(in AttentionParams p, int variant, int paddedHeadDim, bool packed)
    {
        int dp = paddedHeadDim;
        bool wide = dp == MaxHeadDim;
        bool fp16Pv = variant == (int)AttentionVariant.QkInt8PvFp16;
        bool fp16Accum = variant == (int)AttentionVariant.QkInt8PvFp8Fp16Accum;
        int qTile = Grid.IdxX, h = Grid.IdxY, b = Grid.IdxZ;
        // Dense: the whole [b] slice. Packed: this sequence's tokens; tiles past its end exit (the grid is
        // sized by the longest sequence). Causal alignment is per sequence: bottom-right, Lk − Lq.
        var querySpan = packed ? p.QSequences.Resolve(b, p.Nq) : default;
        var keySpan = packed ? p.KSequences.Resolve(b, p.Nk) : default;
        int nq = packed ? querySpan.Length : p.Nq;
        int nk = packed ? keySpan.Length : p.Nk;
        int causalOffset = packed ? nk - nq : p.CausalOffset;
        if (packed && qTile * SageConstants.QTileRows >= nq)
            return;
        var kTile = SharedMemory.Allocate<uint>(KeysPerBlock * KStrideMaxWords);
        var vTile = SharedMemory.Allocate<uint>(MaxHeadDim * VStrideMaxWords);

        int tid = Group.IdxX, warp = tid / 32, lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        int kvHead = h / (p.HeadsQ / p.HeadsKv);
        int warpFirstRow = qTile * SageConstants.QTileRows + warp * SageConstants.WarpRows;
        int rowLo = warpFirstRow + g, rowHi = rowLo + 8;
        int qkWordsPerRow = dp / 4;
        int kStride = qkWordsPerRow + PadWords;
        int vRowWords = fp16Pv ? KeysPerBlock / 2 : KeysPerBlock / 4;
        int vStride = vRowWords + PadWords;
        int vGlobalWordsPerRow = fp16Pv ? p.NkPad / 2 : p.NkPad / 4;
        // Quantized tensors: [layout batch, head, padded rows]; a packed sequence starts at its padded row.
        int qBatch = packed ? querySpan.Batch : b, kBatch = packed ? keySpan.Batch : b;
        int qFirstRow = packed ? querySpan.PaddedStart : 0, kFirstRow = packed ? keySpan.PaddedStart : 0;
        long kvHeadIndex = (long)kBatch * p.HeadsKv + kvHead;
        int kBlocks = packed ? (nk + KeysPerBlock - 1) / KeysPerBlock : p.NkPad / KeysPerBlock;
        bool causal = p.Causal != 0;

        long qHeadRow = ((long)qBatch * p.HeadsQ + h) * p.NqPad + qFirstRow;
        var q = default(QFragments);
        Tile.LoadQ(ref q, p.Q, (qHeadRow + rowLo) * qkWordsPerRow, (qHeadRow + rowHi) * qkWordsPerRow, t, wide);
        float qScale = p.QScale[((long)qBatch * p.HeadsQ + h) * (p.NqPad / SageConstants.QTileRows * SageConstants.QScaleSlotsPerTile)
            + (qFirstRow / SageConstants.QTileRows + qTile) * SageConstants.QScaleSlotsPerTile + warp * 8 + g];
        long kScaleBase = (kvHeadIndex * (p.NkPad / KeysPerBlock) + kFirstRow / KeysPerBlock) * SageConstants.KScaleSlotsPerBlock + t;

        var output = default(OutputTile);
        var scores = default(ScoreTile);
        var pFrag = default(PFragments);
        float rowMaxLo = SageConstants.MaskedLogit, rowMaxHi = SageConstants.MaskedLogit;
        float rowSumLo = 0, rowSumHi = 0;
        float shift = fp16Pv ? 0f : SageConstants.Fp8Shift;

        // Causal: blocks past the tile's last visible key are skipped entirely (all of them when a packed
        // sequence has fewer keys than queries and the tile sees none).
        int visitBlocks = kBlocks;
        if (causal)
        {
            int lastVisible = qTile * SageConstants.QTileRows + SageConstants.QTileRows - 1 + causalOffset;
            visitBlocks = lastVisible < 0 ? 0 : Math.Min(kBlocks, lastVisible / KeysPerBlock + 1);
        }

        int kChunksPerRow = qkWordsPerRow / 4, vChunksPerRow = vRowWords / 4;
        var layout = new TilePrefetch.Layout
        {
            KGlobal = p.K.Cast<Vec4>(), VGlobal = p.V.Cast<Vec4>(),
            KShared = kTile.Cast<Vec4>(), VShared = vTile.Cast<Vec4>(),
            KHeadChunk = (kvHeadIndex * p.NkPad + kFirstRow) * kChunksPerRow,
            // V is transposed: the sequence's first key is a column offset in every channel row.
            VHeadChunk = kvHeadIndex * dp * (vGlobalWordsPerRow / 4) + kFirstRow / (fp16Pv ? 8 : 16),
            KChunksPerRow = kChunksPerRow, VChunksPerRow = vChunksPerRow,
            KStrideChunks = kStride / 4, VStrideChunks = vStride / 4, VGlobalChunksPerRow = vGlobalWordsPerRow / 4,
            KChunks = KeysPerBlock * kChunksPerRow / Threads, VChunks = dp * vChunksPerRow / Threads,
        };
        var prefetch = default(TilePrefetch);
        if (visitBlocks > 0)
            prefetch.Load(layout, 0, tid);
        int firstMasked = Tile.FirstMaskedBlock(warpFirstRow, nk, causal, causalOffset);
        for (int kb = 0; kb < visitBlocks; kb++)
        {
            // The tiles of block kb arrive from registers; block kb + 1's global loads are issued now and
            // stay in flight while this block is computed.
            prefetch.Store(layout, tid);
            Group.Barrier();
            if (kb + 1 < visitBlocks)
                prefetch.Load(layout, kb + 1, tid);

            float kScale = p.KScale[kScaleBase + kb * SageConstants.KScaleSlotsPerBlock];
            Tile.Scores(ref scores, q, kTile, g * kStride + t, kStride, qScale * kScale, wide);
            if (kb >= firstMasked)
                Tile.Mask(ref scores, kb * KeysPerBlock + 2 * t, rowLo, rowHi, nk, causal, causalOffset);

            // Online softmax: new maxima, the factor that rescales what was accumulated so far, P.
            Tile.RowMax(scores, out float blockMaxLo, out float blockMaxHi);
            float newMaxLo = Math.Max(rowMaxLo, QuadMax(blockMaxLo)), newMaxHi = Math.Max(rowMaxHi, QuadMax(blockMaxHi));
            float rescaleLo = FastMath.Exp2(rowMaxLo - newMaxLo), rescaleHi = FastMath.Exp2(rowMaxHi - newMaxHi);
            rowMaxLo = newMaxLo;
            rowMaxHi = newMaxHi;
            Tile.Exp2(ref scores, newMaxLo - shift, newMaxHi - shift, out float blockSumLo, out float blockSumHi);
            // Each lane keeps the partial sum of its own columns; the quad is reduced once at the end.
            rowSumLo = rowSumLo * rescaleLo + blockSumLo;
            rowSumHi = rowSumHi * rescaleHi + blockSumHi;
            Tile.Rescale(ref output, rescaleLo, rescaleHi, wide);

            int vRow = g * vStride + t;
            if (fp16Pv)
            {
                Tile.PackFp16(scores, ref pFrag);
                Tile.PvFp16(ref output, pFrag, vTile, vRow, vStride, wide);
            }
            else
            {
                Tile.PackFp8(scores, ref pFrag);
                if (fp16Accum)
                    Tile.PvFp8Fp16(ref output, pFrag, vTile, vRow, vStride, wide);
                else
                    Tile.PvFp8Fp32(ref output, pFrag, vTile, vRow, vStride, wide);
            }
            Group.Barrier();
        }

        rowSumLo += Warp.ShuffleXor(rowSumLo, 1);
        rowSumLo += Warp.ShuffleXor(rowSumLo, 2);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 1);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 2);
        // A row that sees no key (possible only for packed sequences whose cu_seqlens give fewer keys than
        // queries) gets output 0 and LSE −inf instead of an average over masked keys.
        bool emptyLo = nk <= 0 || (causal && rowLo + causalOffset < 0);
        bool emptyHi = nk <= 0 || (causal && rowHi + causalOffset < 0);
        // V scales and means are per (sequence, kv head); the output and LSE rows follow the input's tokens.
        long channelBase = ((long)b * p.HeadsKv + kvHead) * dp;
        int firstToken = packed ? querySpan.TokenStart : 0;
        long outputBase = qBatch * p.OStrideBatch + h * p.OStrideHead + (long)firstToken * p.OStrideToken;
        Tile.WriteRows(p, output, rowLo < nq, outputBase + rowLo * p.OStrideToken, emptyLo ? 0f : 1f / rowSumLo,
            rowHi < nq, outputBase + rowHi * p.OStrideToken, emptyHi ? 0f : 1f / rowSumHi, channelBase, t, wide);
        if (p.WriteLse != 0 && t == 0)
        {
            long lseBase = ((long)qBatch * p.HeadsQ + h) * p.Nq + firstToken;
            if (rowLo < nq)
                WriteLse(p, lseBase + rowLo, emptyLo, rowSumLo, rowMaxLo - shift);
            if (rowHi < nq)
                WriteLse(p, lseBase + rowHi, emptyHi, rowSumHi, rowMaxHi - shift);
        }
    }

    /// <summary>Maximum over the 4 lanes (t = 0..3) that share a row.</summary>
    internal static float QuadMax(float v)
    {
        v = Math.Max(v, Warp.ShuffleXor(v, 1));
        return Math.Max(v, Warp.ShuffleXor(v, 2));
    }

    /// <summary>Natural-log LSE: l · 2^(m − shift) = Σ 2^logit, plus the K-smoothing term.</summary>
    internal static void WriteLse(in AttentionParams p, long index, bool empty, float rowSum, float rowMaxUnshifted)
    {
        float lse = (FastMath.Log2(rowSum) + rowMaxUnshifted) * SageConstants.Ln2;
        if (p.HasLseCorrection != 0)
            lse += p.LseCorrection[index];
        p.Lse[index] = empty ? float.NegativeInfinity : lse;
    }
}

/// <summary>16 bytes: the unit of the tile copies (one ld.global.v4 / st.shared.v4).</summary>
public struct Vec4
{
    public uint X, Y, Z, W;
}
