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
/// <para>Per 64-key block: S = Q·Kᵀ with Dp/32 <c>m64n64k32 s8</c> wgmma (Q and K from shared memory), online softmax
/// in exp2 with the dequantization folded into the exponent (<see cref="HopperRowSoftmax"/>), P packed from the S
/// registers into the FP8 A registers (V's tokens are permuted by the quantizer to match), then <c>m64n64k32 e4m3</c>
/// wgmma with P from registers and Vᵀ from shared memory into a fresh FP32 accumulator per 64 channels, and
/// O = O · rescale + P·V on CUDA cores (FP32 two-level accumulation: the FP8 wgmma accumulator keeps fewer bits). The
/// tensor cores work for one warpgroup while another runs its softmax.</para>
/// <para>Shared memory (dynamic, <see cref="SharedBytes"/>): one Q tile per warpgroup, then <see cref="Stages"/> stages
/// of K and of Vᵀ. Each tile is K-major core matrices of 8 rows × 16 bytes, ordered [8-row group][16-byte column
/// chunk][row], so 16-byte chunk i of a tile sits at byte 16 i and the 8 threads of a store phase write 128 contiguous
/// bytes (no bank conflicts). The key blocks run in steps of one or two blocks (blocksPerBarrier) with one block-wide
/// barrier per step; each step copies with cp.async (<see cref="HopperTileCopies"/>) the blocks of the step three
/// (one block per step) or two (two per step) steps ahead.</para>
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
    public static int SharedBytes(int paddedHeadDim, int warpGroups, int blocksPerBarrier) =>
        (warpGroups + 2 * Stages(blocksPerBarrier)) * Rows * paddedHeadDim;

    /// <summary>
    /// K/Vᵀ stages for <paramref name="blocksPerBarrier"/> key blocks between barriers: each step (one barrier) loads the
    /// blocks of the step three (1 block per step: 4 stages) or two (2 blocks per step: 6 stages) steps ahead into the
    /// stages of the previous step, which every warpgroup finished before the barrier.
    /// </summary>
    public static int Stages(int blocksPerBarrier) => blocksPerBarrier == 1 ? 4 : 6;

    /// <summary>Most key blocks one barrier may cover.</summary>
    public const int MaxBlocksPerBarrier = 2;

    /// <summary>
    /// Warpgroups per block for a shape: each K/V tile a block loads is used by all of its warpgroups, so more of them
    /// divide the L2 → shared traffic (what bounded the one-warpgroup kernel on the H100: L2 throughput 89 %) and one
    /// warpgroup's softmax overlaps another's products, while fewer waste less on a ragged last block. Three is the most
    /// that fit the registers (168 per thread).
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

    /// <summary>Key blocks per barrier for a request: 1 to <see cref="MaxBlocksPerBarrier"/>, or 0 for the default.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="requested"/> is outside 0..<see cref="MaxBlocksPerBarrier"/>.</exception>
    public static int BlocksPerBarrierFor(int requested)
    {
        if (requested < 0 || requested > MaxBlocksPerBarrier)
            throw new ArgumentOutOfRangeException(nameof(requested), requested, $"key blocks per barrier must be 0 (default) or 1..{MaxBlocksPerBarrier}.");
        return requested > 0 ? requested : DefaultBlocksPerBarrier;
    }

    /// <summary>
    /// The default of <see cref="BlocksPerBarrierFor"/>: two blocks per barrier let the warpgroups drift a block apart
    /// (H100, same run: kernel +4 % at hd128 16K, +6–9 % at hd64).
    /// </summary>
    private const int DefaultBlocksPerBarrier = 2;

    /// <summary>Grid x: blocks of <paramref name="warpGroups"/> tiles covering <paramref name="qTiles"/> (the last may be ragged).</summary>
    public static int Blocks(int qTiles, int warpGroups) => (qTiles + warpGroups - 1) / warpGroups;

    /// <summary>Kernel entry: index math, copies, then the per-block steps.</summary>
    /// <param name="p">Tensors and sizes (V in the FP8 layout for FP32 accumulation).</param>
    /// <param name="qAddress">Device address of <c>p.Q</c> for cp.async (ILGPU cannot take it in a kernel); unused on the CPU.</param>
    /// <param name="kAddress">Device address of <c>p.K</c>.</param>
    /// <param name="vAddress">Device address of <c>p.V</c>.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    /// <param name="warpGroups">Warpgroups (64-row query tiles) per block, 1 to <see cref="MaxWarpGroups"/>, fixed at compile time.</param>
    /// <param name="blocksPerBarrier">Key blocks per block-wide barrier, 1 or 2 (<see cref="Stages"/>), fixed at compile time.</param>
    public static void Run(AttentionParams p, long qAddress, long kAddress, long vAddress, SpecializedValue<int> paddedHeadDim,
        SpecializedValue<int> warpGroups, SpecializedValue<int> blocksPerBarrier)
    {
        int dp = paddedHeadDim, groups = warpGroups, perBarrier = blocksPerBarrier, stages = Stages(perBarrier);
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
        var copies = new HopperTileCopies(p, kvHeadIndex, dp, tid, groups);

        // Causal: blocks past a tile's last visible key are skipped; the block walks as far as its last active tile.
        int visitBlocks = kBlocks, blockBlocks = kBlocks;
        if (causal)
        {
            visitBlocks = VisibleBlocks(qTile, kBlocks, p.CausalOffset);
            blockBlocks = VisibleBlocks(Math.Min(qTiles, (Grid.IdxX + 1) * groups) - 1, kBlocks, p.CausalOffset);
        }
        if (!active)
            visitBlocks = 0;

        int qWord = warpGroup * tileWords;
        if (active)
            CopyQ(shared, qWord, p.Q, qAddress, qRowWord, dp, groupTid);
        // Commit groups ahead of the loop, one per step: {Q, step 0}, {step 1}, … (any may be empty).
        int groupsAhead = stages / perBarrier - 1;
        for (int ahead = 0; ahead < groupsAhead; ahead++)
        {
            IssueStep(copies, shared, p, kAddress, vAddress, ahead, perBarrier, blockBlocks, stages, tileWords, groups);
            AsyncCopy.Commit();
        }

        float qScale = active
            ? p.QScale[((long)b * p.HeadsQ + h) * (qTiles * SageConstants.QScaleSlotsPerTile)
                + qTile * SageConstants.QScaleSlotsPerTile + warp * 8 + g]
            : 0f;
        long kScaleBase = kvHeadIndex * kBlocks * SageConstants.KScaleSlotsPerBlock + t;
        int qkStride = 8 * dp;
        long qDesc = WarpGroupMma.Descriptor(sharedBase + (uint)(qWord * 4), CoreMatrixBytes, qkStride);
        var output = default(OutputTile);
        var scores = default(ScoreTile);
        var pFrag = default(PFragments);
        var softmax = new HopperRowSoftmax(rowLo, rowHi, t);

        int steps = (blockBlocks + perBarrier - 1) / perBarrier;
        for (int step = 0; step < steps; step++)
        {
            // Every thread commits one group per step (maybe empty), so all but the newest groupsAhead − 1 is this step's.
            // After the barrier every warpgroup has finished the previous step, whose stages the new copies take.
            if (perBarrier == 1)
                AsyncCopy.WaitAllButTwo();
            else
                AsyncCopy.WaitAllButLast();
            AsyncCopy.FenceProxyAsync();
            Group.Barrier();
            IssueStep(copies, shared, p, kAddress, vAddress, step + groupsAhead, perBarrier, blockBlocks, stages, tileWords, groups);
            AsyncCopy.Commit();

            for (int kb = step * perBarrier; kb < Math.Min(step * perBarrier + perBarrier, blockBlocks); kb++)
            {
                // Uniform per warpgroup, as wgmma requires. Each product is waited for right after its issue: a software
                // pipeline that kept them in flight across the softmax needed ~234 registers (W ≤ 2) and measured slower than
                // W = 3 warpgroups overlapping one another (docs/performance.md).
                if (kb < visitBlocks)
                {
                    float scale = qScale * p.KScale[kScaleBase + kb * SageConstants.KScaleSlotsPerBlock];
                    IssueScores(out var logits, qDesc, KDesc(sharedBase, kb % stages, tileWords, groups, qkStride), wide, sharedBytes);
                    WarpGroupMma.WaitAll();
                    softmax.Step(logits, scale, kb * KeysPerBlock, p, causal, warpFirstRow, ref scores);
                    Tile.PackFp8(scores, ref pFrag);
                    uint vShared = sharedBase + (uint)(VWord(kb % stages, stages, tileWords, groups) * 4);
                    IssueValues(pFrag, vShared, wide, sharedBytes, out var low, out var high);
                    WarpGroupMma.WaitAll();
                    AddValues(ref output, low, high, softmax.RescaleLo, softmax.RescaleHi, wide);
                }
            }
        }
        AsyncCopy.WaitAll();
        if (!active)
            return;

        float rowSumLo = softmax.SumLo, rowSumHi = softmax.SumHi;
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
                AttentionKernel.WriteLse(p, lseBase + rowLo, false, rowSumLo, softmax.MaxLo - SageConstants.Fp8Shift);
            if (rowHi < p.Nq)
                AttentionKernel.WriteLse(p, lseBase + rowHi, false, rowSumHi, softmax.MaxHi - SageConstants.Fp8Shift);
        }
    }

    /// <summary>Issues S = Q·Kᵀ for one key block (Dp / 32 chained k32 wgmma, one commit group).</summary>
    private static void IssueScores(out WarpGroupIntAccumulator logits, long qDesc, long kDesc, bool wide, ArrayView<byte> shared)
    {
        if (wide)
            WarpGroupMma.IssueS8K128(out logits, qDesc, kDesc, shared);
        else
            WarpGroupMma.IssueS8K64(out logits, qDesc, kDesc, shared);
    }

    /// <summary>
    /// Issues P·V of one key block: P (FP8, registers) times the Vᵀ tile at <paramref name="vShared"/>, one fresh FP32
    /// accumulator per 64 channels, committed as one group.
    /// </summary>
    private static void IssueValues(in PFragments pFrag, uint vShared, bool wide, ArrayView<byte> shared,
        out WarpGroupFloatAccumulator low, out WarpGroupFloatAccumulator high)
    {
        AFrag a0, a1;
        a0.R0 = pFrag.S0R0; a0.R1 = pFrag.S0R1; a0.R2 = pFrag.S0R2; a0.R3 = pFrag.S0R3;
        a1.R0 = pFrag.S1R0; a1.R1 = pFrag.S1R1; a1.R2 = pFrag.S1R2; a1.R3 = pFrag.S1R3;
        WarpGroupMma.IssueE4M3K64(out low, a0, a1, WarpGroupMma.Descriptor(vShared, CoreMatrixBytes, VGroupBytes), shared);
        high = default;
        if (wide)
            WarpGroupMma.IssueE4M3K64(out high, a0, a1, WarpGroupMma.Descriptor(vShared + VHalfBytes, CoreMatrixBytes, VGroupBytes), shared);
        WarpGroupMma.Commit();
    }

    /// <summary>O = O · rescale + the retired P·V of one block (FP32 two-level accumulation).</summary>
    private static void AddValues(ref OutputTile output, in WarpGroupFloatAccumulator low, in WarpGroupFloatAccumulator high,
        float rescaleLo, float rescaleHi, bool wide)
    {
        HopperTile.RescaleAddLowChannels(ref output, low, rescaleLo, rescaleHi);
        if (wide)
            HopperTile.RescaleAddHighChannels(ref output, high, rescaleLo, rescaleHi);
    }

    /// <summary>Issues this thread's copies of the key blocks of step <paramref name="step"/> (those below <paramref name="blockBlocks"/>).</summary>
    private static void IssueStep(in HopperTileCopies copies, ArrayView<uint> shared, in AttentionParams p, long kAddress, long vAddress, int step,
        int perBarrier, int blockBlocks, int stages, int tileWords, int groups)
    {
        for (int kb = step * perBarrier; kb < Math.Min(step * perBarrier + perBarrier, blockBlocks); kb++)
            copies.Issue(shared, p, kAddress, vAddress, kb, KWord(kb % stages, tileWords, groups), VWord(kb % stages, stages, tileWords, groups));
    }

    /// <summary>Descriptor of K stage <paramref name="stage"/>.</summary>
    private static long KDesc(uint sharedBase, int stage, int tileWords, int groups, int qkStride) =>
        WarpGroupMma.Descriptor(sharedBase + (uint)(KWord(stage, tileWords, groups) * 4), CoreMatrixBytes, qkStride);

    /// <summary>Causal: key blocks up to the one holding the last key query tile <paramref name="tile"/>'s last row sees.</summary>
    private static int VisibleBlocks(int tile, int kBlocks, int causalOffset) =>
        Math.Min(kBlocks, (tile * Rows + Rows - 1 + causalOffset) / KeysPerBlock + 1);

    /// <summary>First word of K stage <paramref name="stage"/> (after the Q tiles).</summary>
    private static int KWord(int stage, int tileWords, int groups) => (groups + stage) * tileWords;

    /// <summary>First word of Vᵀ stage <paramref name="stage"/> (after the Q tiles and the K stages).</summary>
    private static int VWord(int stage, int stages, int tileWords, int groups) => (groups + stages + stage) * tileWords;

    /// <summary>
    /// Copies the warpgroup's 64 query rows (Dp INT8 bytes each, row-major from <paramref name="rowWord"/>) into a
    /// K-major tile: chunk i = tid + 128r goes to byte 16 i (see <see cref="HopperTileCopies"/> for the chunk order).
    /// </summary>
    private static void CopyQ(ArrayView<uint> shared, int tileWord, ArrayView<uint> global, long globalAddress, long rowWord, int dp, int tid)
    {
        for (int r = 0; r < dp / 32; r++)
        {
            int chunk = tid + Threads * r;
            AsyncCopy.Copy16(shared, tileWord + 4 * chunk, global, globalAddress, rowWord + HopperTileCopies.RowChunkWord(chunk, dp));
        }
    }
}
