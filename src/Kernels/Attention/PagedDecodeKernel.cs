using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// Decode attention over a paged FP16/BF16 KV cache: one query token per request, all query heads of a kv
/// head (the GQA group) in one thread block so every K/V byte is read once per kv head.
/// </summary>
/// <remarks>
/// <para>Glossary: <c>rowMax</c> = m, the running maximum of a row's logits in the log2 domain
/// (s · sm_scale · log2 e); <c>rowSum</c> = l, the running sum of exp2(logit − m); <c>group</c> = G = Hq / Hkv;
/// a "tile" = 16 consecutive keys (the N of two m16n8 score tiles and the K of one m16n8k16 P·V step).</para>
/// <para>Grid = (splits, Hkv, B), 4 warps. The G query heads are the M rows of mma.m16n8k16 (rows ≥ G are
/// zero padding). Split s owns keys [s · KeysPerSplit, (s + 1) · KeysPerSplit) ∩ [0, seq_len); warp w takes its
/// tiles w, w + 4, ... and keeps its own online-softmax state, so warps never wait for each other in the loop.
/// A tile never straddles two cache blocks (the block size is a multiple of 16), so one block-table entry
/// locates it and its 16 K and V rows are contiguous.</para>
/// <para>Per tile: K rows go straight from global memory into the B registers of Q·Kᵀ (16-byte loads; see
/// <see cref="DecodeTile"/> for the channel order that makes this possible), V rows go through a per-warp
/// shared tile because P·V wants them transposed. Keys past the end are masked to
/// <see cref="SageConstants.MaskedLogit"/> and their rows are never read (zeros instead), so a partial last block
/// cannot bring garbage (NaN, Inf) into the sums.</para>
/// <para>The four warps' states are merged through shared memory at the end: one split writes O (fp16/bf16) and
/// the LSE directly; several splits write normalized FP32 partials and natural-log LSEs for
/// <see cref="AttentionStateMergeKernel"/>. A row with no keys (seq_len 0, or a split past its end) gets O = 0 and
/// LSE = −∞.</para>
/// </remarks>
public static class PagedDecodeKernel
{
    /// <summary>Threads per block: 4 warps.</summary>
    public const int Threads = Warps * 32;

    /// <summary>Warps per block; each walks its own tiles.</summary>
    public const int Warps = 4;

    /// <summary>Keys per warp tile: two n8 score tiles, one k16 P·V step.</summary>
    public const int TileKeys = 16;

    /// <summary>Keys one block covers per round of its warps; splits are multiples of it.</summary>
    public const int KeysPerStep = Warps * TileKeys;

    /// <summary>Largest supported GQA group: the 16 M rows of the mma.</summary>
    public const int MaxGroup = 16;

    private const int MaxHeadDim = 128;

    /// <summary>16 bytes (8 elements) of padding per shared V row: rows 2t of a fragment read fall in different banks.</summary>
    private const int PadElements = 8;

    /// <summary>Kernel entry.</summary>
    /// <param name="p">Tensors and sizes.</param>
    /// <param name="headDim">64 or 128, fixed at compile time.</param>
    /// <param name="elementType">A <see cref="TensorElementType"/> value, fixed at compile time (picks the mma).</param>
    public static void Run(PagedDecodeParams p, SpecializedValue<int> headDim, SpecializedValue<int> elementType)
    {
        int d = headDim;
        bool wide = d == MaxHeadDim;
        bool bf16 = elementType.Value == (int)TensorElementType.BFloat16;
        // One buffer, two lives: the warps' V tiles during the loop, then the warps' outputs for the merge.
        var shared = SharedMemory.Allocate<float>(Warps * MaxGroup * MaxHeadDim);
        var rowMaxShared = SharedMemory.Allocate<float>(Warps * MaxGroup);
        var rowSumShared = SharedMemory.Allocate<float>(Warps * MaxGroup);

        int tid = Group.IdxX, warp = tid / 32, lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        int split = Grid.IdxX, kvHead = Grid.IdxY, b = Grid.IdxZ;
        int group = p.HeadsQ / p.HeadsKv;
        int seqLen = Math.Min(Math.Max(p.SeqLens[b], 0), p.MaxSeqLen);
        int start = split * p.KeysPerSplit;
        int end = Math.Min(seqLen, start + p.KeysPerSplit);
        int keys = Math.Max(end - start, 0);

        int stride = d + PadElements;
        int chunksPerRow = d / 8;
        var vTile = shared.Cast<ushort>().SubView(warp * TileKeys * stride, TileKeys * stride);
        var kCache = p.KCache.Cast<Vec4>();
        var vCache = p.VCache.Cast<Vec4>();

        int firstHead = kvHead * group;
        long qRowLo = g < group ? b * p.QStrideBatch + (firstHead + g) * p.QStrideHead : -1;
        long qRowHi = g + 8 < group ? b * p.QStrideBatch + (firstHead + g + 8) * p.QStrideHead : -1;
        var q = default(DecodeQuery);
        DecodeTile.LoadQuery(ref q, p.Q, qRowLo, qRowHi, t, wide);

        var output = default(DecodeOutput);
        var kRegs = default(DecodeKeys);
        var vRegs = default(DecodeValues);
        float rowMaxLo = SageConstants.MaskedLogit, rowMaxHi = SageConstants.MaskedLogit;
        float rowSumLo = 0, rowSumHi = 0;
        int tiles = (keys + TileKeys - 1) / TileKeys;
        long blockTableRow = (long)b * p.BlockTableStride;
        for (int tile = warp; tile < tiles; tile += Warps)
        {
            int firstKey = start + tile * TileKeys;
            int validKeys = Math.Min(TileKeys, end - firstKey);
            int logicalBlock = firstKey / p.BlockSize;
            int physicalBlock = Math.Min(Math.Max(p.BlockTables[blockTableRow + logicalBlock], 0), p.NumBlocks - 1);
            long rowChunk = (((long)physicalBlock * p.HeadsKv + kvHead) * p.BlockSize + firstKey % p.BlockSize) * chunksPerRow;

            // All global loads of the tile are issued before any is used.
            DecodeTile.LoadKeys(ref kRegs, kCache, g < validKeys ? rowChunk + g * chunksPerRow : -1,
                g + 8 < validKeys ? rowChunk + (g + 8) * chunksPerRow : -1, t, wide);
            DecodeTile.LoadValues(ref vRegs, vCache, rowChunk, lane, chunksPerRow, validKeys, wide);
            DecodeTile.StoreValues(vRegs, vTile.Cast<Vec4>(), lane, chunksPerRow, stride / 8, wide);
            Warp.Barrier();

            var s0 = default(Float4Frag);
            var s1 = default(Float4Frag);
            DecodeTile.Scores(ref s0, ref s1, q, kRegs, wide, bf16);
            // Lane (g, t) holds keys 2t, 2t + 1 (s0) and 8 + 2t, 9 + 2t (s1) of rows g (C0, C1) and g + 8 (C2, C3).
            int key0 = 2 * t, key8 = 8 + 2 * t;
            s0.C0 = Logit(s0.C0, key0, validKeys, p.ScaleLog2); s0.C1 = Logit(s0.C1, key0 + 1, validKeys, p.ScaleLog2);
            s0.C2 = Logit(s0.C2, key0, validKeys, p.ScaleLog2); s0.C3 = Logit(s0.C3, key0 + 1, validKeys, p.ScaleLog2);
            s1.C0 = Logit(s1.C0, key8, validKeys, p.ScaleLog2); s1.C1 = Logit(s1.C1, key8 + 1, validKeys, p.ScaleLog2);
            s1.C2 = Logit(s1.C2, key8, validKeys, p.ScaleLog2); s1.C3 = Logit(s1.C3, key8 + 1, validKeys, p.ScaleLog2);

            // Online softmax: new maxima over the quad, the factor for what was accumulated so far, P.
            float newMaxLo = Math.Max(rowMaxLo, QuadMax(Math.Max(Math.Max(s0.C0, s0.C1), Math.Max(s1.C0, s1.C1))));
            float newMaxHi = Math.Max(rowMaxHi, QuadMax(Math.Max(Math.Max(s0.C2, s0.C3), Math.Max(s1.C2, s1.C3))));
            float rescaleLo = FastMath.Exp2(rowMaxLo - newMaxLo), rescaleHi = FastMath.Exp2(rowMaxHi - newMaxHi);
            rowMaxLo = newMaxLo;
            rowMaxHi = newMaxHi;
            s0.C0 = FastMath.Exp2(s0.C0 - newMaxLo); s0.C1 = FastMath.Exp2(s0.C1 - newMaxLo);
            s1.C0 = FastMath.Exp2(s1.C0 - newMaxLo); s1.C1 = FastMath.Exp2(s1.C1 - newMaxLo);
            s0.C2 = FastMath.Exp2(s0.C2 - newMaxHi); s0.C3 = FastMath.Exp2(s0.C3 - newMaxHi);
            s1.C2 = FastMath.Exp2(s1.C2 - newMaxHi); s1.C3 = FastMath.Exp2(s1.C3 - newMaxHi);
            // Each lane keeps the partial sum of its own keys; the quad is reduced once at the end.
            rowSumLo = rowSumLo * rescaleLo + (s0.C0 + s0.C1 + s1.C0 + s1.C1);
            rowSumHi = rowSumHi * rescaleHi + (s0.C2 + s0.C3 + s1.C2 + s1.C3);
            DecodeTile.Rescale(ref output, rescaleLo, rescaleHi, wide);

            // P as the A operand of m16n8k16: R0/R1 = keys 2t, 2t + 1 of rows g / g + 8, R2/R3 = keys 8 + 2t, 9 + 2t.
            AFrag pFrag;
            pFrag.R0 = Pack(s0.C0, s0.C1, bf16);
            pFrag.R1 = Pack(s0.C2, s0.C3, bf16);
            pFrag.R2 = Pack(s1.C0, s1.C1, bf16);
            pFrag.R3 = Pack(s1.C2, s1.C3, bf16);
            DecodeTile.Pv(ref output, pFrag, vTile, 2 * t * stride + g, stride, wide, bf16);
            // The next tile's V stores must not overtake this tile's fragment reads.
            Warp.Barrier();
        }

        rowSumLo += Warp.ShuffleXor(rowSumLo, 1);
        rowSumLo += Warp.ShuffleXor(rowSumLo, 2);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 1);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 2);

        // Every warp is done with its V tile before the buffer becomes the merge area.
        Group.Barrier();
        int warpRow = warp * MaxGroup;
        DecodeTile.StoreOutput(output, shared, (warpRow + g) * d, (warpRow + g + 8) * d, t, wide);
        if (t == 0)
        {
            rowMaxShared[warpRow + g] = rowMaxLo;
            rowMaxShared[warpRow + g + 8] = rowMaxHi;
            rowSumShared[warpRow + g] = rowSumLo;
            rowSumShared[warpRow + g + 8] = rowSumHi;
        }
        Group.Barrier();

        for (int element = tid; element < group * d; element += Threads)
        {
            int row = element / d, channel = element & (d - 1);
            float max = SageConstants.MaskedLogit;
            for (int w = 0; w < Warps; w++)
                max = Math.Max(max, rowMaxShared[w * MaxGroup + row]);
            float sum = 0, value = 0;
            for (int w = 0; w < Warps; w++)
            {
                // A warp that saw no key has l = 0 and O = 0: its weight does not matter.
                float weight = FastMath.Exp2(rowMaxShared[w * MaxGroup + row] - max);
                sum += rowSumShared[w * MaxGroup + row] * weight;
                value += shared[(w * MaxGroup + row) * d + channel] * weight;
            }
            bool empty = !(sum > 0);
            float result = empty ? 0f : value / sum;
            float lse = empty ? float.NegativeInfinity : (FastMath.Log2(sum) + max) * SageConstants.Ln2;
            int head = firstHead + row;
            if (p.Splits == 1)
            {
                p.O[b * p.OStrideBatch + head * p.OStrideHead + channel] = DeviceConvert.FromFloat(result, elementType.Value);
                if (p.WriteLse != 0 && channel == 0)
                    p.Lse[(long)b * p.HeadsQ + head] = lse;
            }
            else
            {
                long stateRow = ((long)split * p.Batch + b) * p.HeadsQ + head;
                p.PartialO[stateRow * d + channel] = result;
                if (channel == 0)
                    p.PartialLse[stateRow] = lse;
            }
        }
    }

    /// <summary>The log2-domain logit of a score, or the mask value for a key past the end of the range.</summary>
    private static float Logit(float score, int key, int validKeys, float scaleLog2) =>
        key < validKeys ? score * scaleLog2 : SageConstants.MaskedLogit;

    /// <summary>Maximum over the 4 lanes (t = 0..3) that share a row.</summary>
    private static float QuadMax(float v)
    {
        v = Math.Max(v, Warp.ShuffleXor(v, 1));
        return Math.Max(v, Warp.ShuffleXor(v, 2));
    }

    /// <summary>Two probabilities (in [0, 1]) as the packed 16-bit pair the P·V mma takes, low half = <paramref name="low"/>.</summary>
    private static uint Pack(float low, float high, bool bf16) =>
        bf16
            ? DeviceConvert.FloatToBf16(low) | ((uint)DeviceConvert.FloatToBf16(high) << 16)
            : DeviceConvert.PackFp16x2(low, high);
}
