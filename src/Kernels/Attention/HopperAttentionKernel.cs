using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// O = softmax(Q Kᵀ · sm_scale) V on Hopper warpgroup tensor cores (wgmma, sm_90a): SageAttention2's sm90
/// algorithm — per-thread INT8 Q/K scales, FP8 P·V with FP32 + FP32 two-level accumulation.
/// </summary>
/// <remarks>
/// <para>Glossary as in <see cref="AttentionKernel"/>: <c>rowMax</c> = m, <c>rowSum</c> = l, <c>lo</c>/<c>hi</c> =
/// the two rows a thread owns, 16w + g and 16w + g + 8 (w = warp, g = lane / 4).</para>
/// <para>Thread block = 1 to 3 warpgroups (128 threads each), warpgroup w owning the 64 query rows of tile
/// blockIdx.x · warpGroups + w; grid = (⌈Q tiles / warpGroups⌉, Hq, B). The warpgroups share every K and Vᵀ tile the
/// block loads (each tile crosses from L2 once per block, not once per 64 rows). The quantizers' per-thread scale
/// layouts apply unchanged: the wgmma accumulator gives warp w rows 16w + g, 16w + g + 8 and columns 8j + 2t,
/// 8j + 2t + 1, as mma.sync does.</para>
/// <para>Per 64-key block: S = Q·Kᵀ with Dp/32 <c>m64n64k32 s8</c> wgmma (Q and K from shared memory), dequantized
/// with one multiply, masked where the block crosses Nk or the diagonal, online softmax in exp2, P packed from
/// the S registers into the FP8 A registers (V's tokens are permuted by the quantizer to match), then
/// <c>m64n64k32 e4m3</c> wgmma with P from registers and Vᵀ from shared memory into a fresh FP32 accumulator per
/// 64 channels, added into the FP32 output on CUDA cores (the FP8 wgmma accumulator keeps fewer bits).</para>
/// <para>Shared memory (dynamic, <see cref="SharedBytes"/>): one Q tile per warpgroup, then three stages of K and of Vᵀ. Each tile is
/// K-major core matrices of 8 rows × 16 bytes, ordered [8-row group][16-byte column chunk][row], so 16-byte
/// chunk i of a tile sits at byte 16 i and the 8 threads of a store phase write 128 contiguous bytes (no bank
/// conflicts). Block kb + 2 is copied with cp.async while block kb is computed; one barrier per block.</para>
/// </remarks>
public static class HopperAttentionKernel
{
    /// <summary>Threads of one warpgroup; a block has <c>warpGroups</c> of them.</summary>
    public const int Threads = 128;

    /// <summary>Most warpgroups (64-row query tiles) one block may have.</summary>
    public const int MaxWarpGroups = 3;

    private const int Rows = SageConstants.QTileRows;
    private const int KeysPerBlock = SageConstants.KBlockKeys;
    /// <summary>Bytes of one core matrix (8 rows × 16 bytes): the step between core matrices along K (LBO).</summary>
    private const int CoreMatrixBytes = 128;
    /// <summary>Vᵀ tile: 64 keys = 4 core matrices per 8-channel group (its SBO).</summary>
    private const int VGroupBytes = KeysPerBlock / 16 * CoreMatrixBytes;
    /// <summary>Bytes between the two 64-channel halves of the Vᵀ tile (8 channel groups).</summary>
    private const int VHalfBytes = 8 * VGroupBytes;

    /// <summary>
    /// Dynamic shared memory of one block on the GPU: one Q tile per warpgroup, then <see cref="Stages"/> K and Vᵀ
    /// stages (64 × Dp bytes each) shared by the warpgroups.
    /// </summary>
    public static int SharedBytes(int paddedHeadDim, int warpGroups = 1) => (warpGroups + 2 * Stages) * Rows * paddedHeadDim;

    /// <summary>
    /// K/Vᵀ stages: block kb + 2 is loaded while block kb is computed, so one barrier per block suffices (the stage a
    /// copy overwrites was last read in block kb − 1, which every warpgroup finished before that barrier).
    /// </summary>
    private const int Stages = 3;

    /// <summary>
    /// Warpgroups per block for a shape: each K/V tile a block loads is used by all of its warpgroups, so more of them
    /// divide the L2 → shared traffic (what bounded the one-warpgroup kernel on the H100: L2 throughput 89 %), while
    /// fewer keep more blocks per SM and waste less on a ragged last block.
    /// </summary>
    /// <param name="qTiles">64-row query tiles per (batch, head).</param>
    /// <param name="requested">An explicit choice (1 to <see cref="MaxWarpGroups"/>), or 0 for the automatic one.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="requested"/> is outside 0..<see cref="MaxWarpGroups"/>.</exception>
    public static int WarpGroupsFor(int qTiles, int requested)
    {
        if (requested < 0 || requested > MaxWarpGroups)
            throw new ArgumentOutOfRangeException(nameof(requested), requested, $"warpgroups per block must be 0 (automatic) or 1..{MaxWarpGroups}.");
        if (requested > 0)
            return requested;
        return Math.Min(qTiles, MaxWarpGroups);
    }

    /// <summary>Grid x: blocks of <paramref name="warpGroups"/> tiles covering <paramref name="qTiles"/> (the last may be ragged).</summary>
    public static int Blocks(int qTiles, int warpGroups) => (qTiles + warpGroups - 1) / warpGroups;

    /// <summary>Kernel entry: index math, copies, then the per-block steps.</summary>
    /// <param name="p">Tensors and sizes (V in the FP8 layout for FP32 accumulation).</param>
    /// <param name="qAddress">Device address of <c>p.Q</c> for cp.async (ILGPU cannot take it in a kernel); unused on the CPU.</param>
    /// <param name="kAddress">Device address of <c>p.K</c>.</param>
    /// <param name="vAddress">Device address of <c>p.V</c>.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    /// <param name="warpGroups">Warpgroups (64-row query tiles) per block, 1 to <see cref="MaxWarpGroups"/>, fixed at compile time.</param>
    public static void Run(AttentionParams p, long qAddress, long kAddress, long vAddress, SpecializedValue<int> paddedHeadDim,
        SpecializedValue<int> warpGroups)
    {
        int dp = paddedHeadDim, groups = warpGroups;
        bool wide = dp == 128;
        int tileWords = Rows * dp / 4;
        // One view of dynamic shared memory for the whole kernel: on ILGPU's CPU accelerator each GetDynamic call
        // returns a new buffer. The CPU launch adds the emulation's staging area at its end.
        var sharedBytes = SharedMemory.GetDynamic<byte>();
        var shared = sharedBytes.Cast<uint>();
        uint sharedBase = AsyncCopy.SharedAddress(0);

        int tid = Group.IdxX, warpGroup = tid / Threads, groupTid = tid % Threads, warp = groupTid / 32, lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        int qTile = Grid.IdxX * groups + warpGroup, h = Grid.IdxY, b = Grid.IdxZ;
        int qTiles = p.NqPad / Rows;
        // A ragged last block's spare warpgroups copy and wait with the others but compute nothing.
        bool active = qTile < qTiles;
        int kvHead = h / (p.HeadsQ / p.HeadsKv);
        int warpFirstRow = qTile * Rows + warp * SageConstants.WarpRows;
        int rowLo = warpFirstRow + g, rowHi = rowLo + 8;
        long kvHeadIndex = (long)b * p.HeadsKv + kvHead;
        int kBlocks = p.NkPad / KeysPerBlock;
        bool causal = p.Causal != 0;
        int rowWords = dp / 4;
        long qRowWord = (((long)b * p.HeadsQ + h) * p.NqPad + qTile * Rows) * rowWords;
        long kRowWord = kvHeadIndex * p.NkPad * rowWords;
        long vHeadWord = kvHeadIndex * dp * (p.NkPad / 4);
        int vRowWords = p.NkPad / 4;

        // Causal: blocks past a tile's last visible key are skipped; the block walks as far as its last active tile.
        int visitBlocks = kBlocks, blockBlocks = kBlocks;
        if (causal)
        {
            visitBlocks = VisibleBlocks(qTile, kBlocks, p.CausalOffset);
            blockBlocks = VisibleBlocks(Math.Min(qTiles, (Grid.IdxX + 1) * groups) - 1, kBlocks, p.CausalOffset);
        }

        int qWord = warpGroup * tileWords;
        if (active)
            CopyRows(shared, qWord, p.Q, qAddress, qRowWord, dp, groupTid, 0, 1);
        // Two commit groups ahead of the loop: {Q, block 0} and {block 1} (either may be empty).
        if (blockBlocks > 0)
            CopyBlock(shared, p, 0, tileWords, groups, kAddress, vAddress, kRowWord, vHeadWord, vRowWords, dp, groupTid, warpGroup);
        AsyncCopy.Commit();
        if (blockBlocks > 1)
            CopyBlock(shared, p, 1, tileWords, groups, kAddress, vAddress, kRowWord, vHeadWord, vRowWords, dp, groupTid, warpGroup);
        AsyncCopy.Commit();

        float qScale = active
            ? p.QScale[((long)b * p.HeadsQ + h) * (qTiles * SageConstants.QScaleSlotsPerTile)
                + qTile * SageConstants.QScaleSlotsPerTile + warp * 8 + g]
            : 0f;
        int qkStride = 8 * dp;
        uint qShared = sharedBase + (uint)(qWord * 4);
        var output = default(OutputTile);
        var scores = default(ScoreTile);
        var pFrag = default(PFragments);
        float rowMaxLo = SageConstants.MaskedLogit, rowMaxHi = SageConstants.MaskedLogit;
        float rowSumLo = 0, rowSumHi = 0;
        float shift = SageConstants.Fp8Shift;

        for (int kb = 0; kb < blockBlocks; kb++)
        {
            int stage = kb % Stages;
            // Every thread commits one group per block (maybe empty), so "all but the newest" is block kb; after the
            // barrier every warpgroup is done with block kb − 1, whose stage block kb + 2 now overwrites.
            AsyncCopy.WaitAllButLast();
            AsyncCopy.FenceProxyAsync();
            Group.Barrier();
            if (kb + 2 < blockBlocks)
                CopyBlock(shared, p, kb + 2, tileWords, groups, kAddress, vAddress, kRowWord, vHeadWord, vRowWords, dp, groupTid, warpGroup);
            AsyncCopy.Commit();

            // Uniform per warpgroup, as wgmma requires.
            if (kb < visitBlocks && active)
            {
                uint kShared = sharedBase + (uint)(KWord(stage, tileWords, groups) * 4);
                uint vShared = sharedBase + (uint)(VWord(stage, tileWords, groups) * 4);
                WarpGroupIntAccumulator logits;
                long qDesc = WarpGroupMma.Descriptor(qShared, CoreMatrixBytes, qkStride), kDesc = WarpGroupMma.Descriptor(kShared, CoreMatrixBytes, qkStride);
                if (wide)
                    WarpGroupMma.MmaS8K128(out logits, qDesc, kDesc, sharedBytes);
                else
                    WarpGroupMma.MmaS8K64(out logits, qDesc, kDesc, sharedBytes);

                float kScale = p.KScale[kvHeadIndex * kBlocks * SageConstants.KScaleSlotsPerBlock + kb * SageConstants.KScaleSlotsPerBlock + t];
                HopperTile.Dequantize(logits, qScale * kScale, ref scores);
                int lastKey = kb * KeysPerBlock + KeysPerBlock - 1;
                if (lastKey >= p.Nk || (causal && lastKey > warpFirstRow + p.CausalOffset))
                    Tile.Mask(ref scores, kb * KeysPerBlock + 2 * t, rowLo, rowHi, p.Nk, causal, p.CausalOffset);

                // Online softmax: new maxima, the factor that rescales what was accumulated so far, P.
                Tile.RowMax(scores, out float blockMaxLo, out float blockMaxHi);
                float newMaxLo = Math.Max(rowMaxLo, AttentionKernel.QuadMax(blockMaxLo)), newMaxHi = Math.Max(rowMaxHi, AttentionKernel.QuadMax(blockMaxHi));
                float rescaleLo = FastMath.Exp2(rowMaxLo - newMaxLo), rescaleHi = FastMath.Exp2(rowMaxHi - newMaxHi);
                rowMaxLo = newMaxLo;
                rowMaxHi = newMaxHi;
                Tile.Exp2(ref scores, newMaxLo - shift, newMaxHi - shift, out float blockSumLo, out float blockSumHi);
                rowSumLo = rowSumLo * rescaleLo + blockSumLo;
                rowSumHi = rowSumHi * rescaleHi + blockSumHi;
                Tile.PackFp8(scores, ref pFrag);

                // P·V: one fresh FP32 accumulator per 64 channels, each a two-step k32 chain over the 64 keys.
                AFrag a0, a1;
                a0.R0 = pFrag.S0R0; a0.R1 = pFrag.S0R1; a0.R2 = pFrag.S0R2; a0.R3 = pFrag.S0R3;
                a1.R0 = pFrag.S1R0; a1.R1 = pFrag.S1R1; a1.R2 = pFrag.S1R2; a1.R3 = pFrag.S1R3;
                Tile.Rescale(ref output, rescaleLo, rescaleHi, wide);
                WarpGroupMma.MmaE4M3K64(out var low, a0, a1, WarpGroupMma.Descriptor(vShared, CoreMatrixBytes, VGroupBytes), sharedBytes);
                HopperTile.AddLowChannels(ref output, low);
                if (wide)
                {
                    WarpGroupMma.MmaE4M3K64(out var high, a0, a1, WarpGroupMma.Descriptor(vShared + VHalfBytes, CoreMatrixBytes, VGroupBytes), sharedBytes);
                    HopperTile.AddHighChannels(ref output, high);
                }
            }
        }
        AsyncCopy.WaitAll();
        if (!active)
            return;

        rowSumLo += Warp.ShuffleXor(rowSumLo, 1);
        rowSumLo += Warp.ShuffleXor(rowSumLo, 2);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 1);
        rowSumHi += Warp.ShuffleXor(rowSumHi, 2);
        long channelBase = kvHeadIndex * dp;
        if (rowLo < p.Nq)
            Tile.WriteRow(p, output, false, b * p.OStrideBatch + h * p.OStrideHead + rowLo * p.OStrideToken, channelBase, t, 1f / rowSumLo, wide);
        if (rowHi < p.Nq)
            Tile.WriteRow(p, output, true, b * p.OStrideBatch + h * p.OStrideHead + rowHi * p.OStrideToken, channelBase, t, 1f / rowSumHi, wide);
        if (p.WriteLse != 0 && t == 0)
        {
            long lseBase = ((long)b * p.HeadsQ + h) * p.Nq;
            if (rowLo < p.Nq)
                AttentionKernel.WriteLse(p, lseBase + rowLo, false, rowSumLo, rowMaxLo - shift);
            if (rowHi < p.Nq)
                AttentionKernel.WriteLse(p, lseBase + rowHi, false, rowSumHi, rowMaxHi - shift);
        }
    }

    /// <summary>Causal: key blocks up to the one holding the last key query tile <paramref name="tile"/>'s last row sees.</summary>
    private static int VisibleBlocks(int tile, int kBlocks, int causalOffset) =>
        Math.Min(kBlocks, (tile * Rows + Rows - 1 + causalOffset) / KeysPerBlock + 1);

    /// <summary>First word of K stage <paramref name="stage"/> (after the Q tiles).</summary>
    private static int KWord(int stage, int tileWords, int groups) => (groups + stage) * tileWords;

    /// <summary>First word of Vᵀ stage <paramref name="stage"/> (after the Q tiles and the K stages).</summary>
    private static int VWord(int stage, int tileWords, int groups) => (groups + Stages + stage) * tileWords;

    /// <summary>Issues this thread's share of the copies of key block <paramref name="kb"/> (K rows and Vᵀ columns) into its stage.</summary>
    private static void CopyBlock(ArrayView<uint> shared, AttentionParams p, int kb, int tileWords, int groups, long kAddress, long vAddress,
        long kRowWord, long vHeadWord, int vRowWords, int dp, int groupTid, int warpGroup)
    {
        int stage = kb % Stages;
        CopyRows(shared, KWord(stage, tileWords, groups), p.K, kAddress, kRowWord + (long)kb * KeysPerBlock * (dp / 4), dp, groupTid, warpGroup, groups);
        CopyVColumns(shared, VWord(stage, tileWords, groups), p.V, vAddress, vHeadWord + kb * (KeysPerBlock / 4), vRowWords, dp,
            groupTid, warpGroup, groups);
    }

    /// <summary>
    /// Copies 64 rows of Dp INT8 bytes (Q or K, row-major from <paramref name="rowWord"/>) into a K-major tile.
    /// Chunk i = tid + 128r: row (i / 8) / (Dp / 16) · 8 + i % 8, column chunk (i / 8) % (Dp / 16), stored at byte
    /// 16 i; a warp reads 64 contiguous bytes of each of 8 rows. Warpgroup <paramref name="part"/> of
    /// <paramref name="parts"/> copies the rounds r ≡ part (mod parts).
    /// </summary>
    private static void CopyRows(ArrayView<uint> shared, int tileWord, ArrayView<uint> global, long globalAddress, long rowWord, int dp, int tid,
        int part, int parts)
    {
        int chunksPerRow = dp / 16, rowWords = dp / 4;
        for (int r = part; r < dp / 32; r += parts)
        {
            int chunk = tid + Threads * r;
            int group = chunk >> 3;
            int row = group / chunksPerRow * 8 + (chunk & 7), column = group % chunksPerRow;
            AsyncCopy.Copy16(shared, tileWord + 4 * chunk, global, globalAddress, rowWord + (long)row * rowWords + 4 * column);
        }
    }

    /// <summary>
    /// Copies the 64 keys of one block for every channel of Vᵀ (Dp rows of 64 FP8 bytes) into a K-major tile,
    /// chunk i = tid + 128r: channel (i / 32) · 8 + i % 8, key chunk (i / 8) % 4, stored at byte 16 i; rounds split
    /// among warpgroups as in <see cref="CopyRows"/>.
    /// </summary>
    private static void CopyVColumns(ArrayView<uint> shared, int tileWord, ArrayView<uint> global, long globalAddress, long firstWord,
        int channelWords, int dp, int tid, int part, int parts)
    {
        for (int r = part; r < dp / 32; r += parts)
        {
            int chunk = tid + Threads * r;
            int channel = (chunk >> 5) * 8 + (chunk & 7), column = (chunk >> 3) & 3;
            AsyncCopy.Copy16(shared, tileWord + 4 * chunk, global, globalAddress, firstWord + (long)channel * channelWords + 4 * column);
        }
    }
}
