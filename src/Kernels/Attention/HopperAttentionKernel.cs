using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// O = softmax(Q Kᵀ · sm_scale) V on Hopper warpgroup tensor cores (wgmma, sm_90a): SageAttention2's sm90
/// algorithm — per-thread INT8 Q/K scales, FP8 P·V with FP32 + FP32 two-level accumulation — or, as the accurate mode,
/// FP16 P·V accumulated in FP32 by the tensor cores (<see cref="AttentionVariant.HopperQkInt8PvFp16"/>).
/// </summary>
/// <remarks>
/// <para>Glossary as in <see cref="AttentionKernel"/>: <c>rowMax</c> = m, <c>rowSum</c> = l, <c>lo</c>/<c>hi</c> =
/// the two rows a thread owns, 16w + g and 16w + g + 8 (w = warp, g = lane / 4).</para>
/// <para>Thread block = 1 to 4 warpgroups (128 threads each; blocks of 1 or 2 run two to an SM), warpgroup w owning
/// the 64 query rows of tile x · warpGroups + w, x = blockIdx.x (causal: counted from the last block, so a head's
/// heaviest tiles start first); grid = (⌈Q tiles / warpGroups⌉, Hq, B). The warpgroups share every K and Vᵀ tile the
/// block loads (each tile crosses from L2 once per block, not once per 64 rows). The quantizers' per-thread scale
/// layouts apply unchanged: the wgmma accumulator gives warp w rows 16w + g, 16w + g + 8 and columns 8j + 2t,
/// 8j + 2t + 1, as mma.sync does.</para>
/// <para>Per 64-key block: S = Q·Kᵀ with Dp/32 <c>m64n64k32 s8</c> wgmma (Q and K from shared memory), online softmax
/// in exp2 with the dequantization folded into the exponent (<see cref="HopperRowSoftmax"/>), P packed from the S
/// registers into the FP8 A registers (V's tokens are permuted by the quantizer to match), then <c>m64n64k32 e4m3</c>
/// wgmma with P from registers and Vᵀ from shared memory into a fresh FP32 accumulator per 64 channels, and
/// O = O · rescale + P·V on CUDA cores (FP32 two-level accumulation: the FP8 wgmma accumulator keeps fewer bits). In the
/// same commit group an <c>m64n8k32 e4m3</c> product of P with a shared tile of e4m3 ones gives the rows' sums of P
/// (<see cref="WarpGroupMma.IssueE4M3RowSums"/>), so the softmax adds none on CUDA cores. The
/// tensor cores work for one warpgroup while another runs its softmax.</para>
/// <para>FP16 values (<c>valueBytes</c> = 2): P packed as fp16 (the m16n8k16 A fragment, keys in order; no shift), Vᵀ
/// tiles of 128-byte rows (64 fp16 keys), and four <c>m64n64k16 f32.f16.f16</c> wgmma per 64 channels that accumulate
/// into O itself, kept in two wgmma accumulators: O is rescaled in place first (one multiply per element, as the FP8
/// path's add), and FP16 products need no second accumulator (the tensor cores keep FP32 for them). At three warpgroups
/// that loop is pipelined (<see cref="Pipelined"/>): P·V of block j stays in flight during the softmax of j + 1, with O
/// and P in resident registers (<see cref="ResidentPv"/>).</para>
/// <para>Tiles arrive by the copy engine (<see cref="TensorCopy"/>): thread 0 of the block is the producer. It loads
/// the Q tiles once, then keeps the K and Vᵀ tiles of <see cref="LeadFor"/> key blocks ahead of its own warpgroup in a
/// ring of <see cref="StagesFor"/> stages. Stage s has a "full" <see cref="Mbarrier"/> (one arrival with the byte count;
/// the copies complete it) that every warp waits on before it reads the stage, and an "empty" one that every warp
/// arrives on once its products of the stage have retired; the producer waits on "empty" before it refills a stage.
/// No block-wide barrier is left in the loop, so the warpgroups drift apart by up to stages − lead − 1 blocks.</para>
/// <para>Shared memory (dynamic, <see cref="SharedBytes"/>): one Q tile per warpgroup, the K stages, the Vᵀ stages,
/// then the barriers. A tile is its rows one after another, swizzled as the copy engine writes them and the swizzled
/// descriptors read them (<see cref="SharedSwizzle"/>): Q and K rows of Dp bytes (128-byte swizzle at Dp = 128,
/// 64-byte at 64), Vᵀ rows (channels) of 64 keys (64-byte swizzle for FP8, 128-byte for FP16). One copy per tile; 8-row groups are 8 rows apart
/// (SBO), and a k32 slice (8-bit elements) or a k16 slice (FP16 Vᵀ) starts 32 bytes further along the rows.</para>
/// </remarks>
public static partial class HopperAttentionKernel
{
    /// <summary>Threads of one warpgroup; a block has <c>warpGroups</c> of them.</summary>
    public const int Threads = 128;

    /// <summary>Most warpgroups (64-row query tiles) one block may have.</summary>
    public const int MaxWarpGroups = 4;

    /// <summary>Warpgroups per block when the caller does not choose (<see cref="WarpGroupsFor"/>; 3 for FP16 values at Dp = 128).</summary>
    public const int DefaultWarpGroups = 2;

    /// <summary>
    /// Blocks that share one SM: blocks of one or two warpgroups run in pairs (fewer stages each), so one block's
    /// prologue and epilogue overlap the other's products; larger blocks fill the SM alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int BlocksPerSm(int warpGroups) => warpGroups <= 2 ? 2 : 1;

    /// <summary>
    /// K/Vᵀ stages in shared memory: 8, or 4 where two blocks share the SM (a power of two: stage = block &amp;
    /// (stages − 1), phase = block / stages).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int StagesFor(int warpGroups) => BlocksPerSm(warpGroups) == 2 ? 4 : 8;

    /// <summary>
    /// Key blocks the producer loads ahead of its warpgroup's current block (5 of 8 stages, 2 of 4). A refill of block j
    /// waits until every warp released block j − stages, i.e. the other warpgroups may trail the producer's by
    /// stages − lead − 1 blocks.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int LeadFor(int stages) => stages == 8 ? 5 : 2;

    /// <summary>
    /// Whether P·V's two 64-channel halves (hd128) retire one after another, so that one fresh FP32 accumulator (32
    /// registers) is live instead of two: where the SM's 65536 registers leave ≤ 170 per thread (two to four warpgroups).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool SerialValueHalves(int warpGroups) => 65536 / (warpGroups * Threads * BlocksPerSm(warpGroups)) <= 170;

    private const int Rows = SageConstants.QTileRows;
    private const int KeysPerBlock = SageConstants.KBlockKeys;

    /// <summary>
    /// Dynamic shared memory of one block on the GPU: one Q tile per warpgroup, <see cref="StagesFor"/> K stages (64 × Dp
    /// bytes) and Vᵀ stages (64 × Dp × <paramref name="valueBytes"/>) shared by the warpgroups, and the barriers (stages
    /// "full", stages "empty", one for Q), then for FP8 values the e4m3 ones tile of the row sums
    /// (<see cref="WarpGroupMma.OnesTileBytes"/>). At most 224 KB (FP16 values, four warpgroups).
    /// </summary>
    /// <param name="paddedHeadDim">64 or 128.</param>
    /// <param name="warpGroups">1 to <see cref="MaxWarpGroups"/>.</param>
    /// <param name="valueBytes">Bytes of one V element: 1 (FP8) or 2 (FP16).</param>
    public static int SharedBytes(int paddedHeadDim, int warpGroups, int valueBytes)
    {
        int stages = StagesFor(warpGroups);
        return BarrierOffset(paddedHeadDim, warpGroups, valueBytes) + BarrierBytes(stages) + (valueBytes == 1 ? WarpGroupMma.OnesTileBytes : 0);
    }

    /// <summary>Byte offset of the barriers in dynamic shared memory: after the Q tiles and the K and Vᵀ stages.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BarrierOffset(int paddedHeadDim, int warpGroups, int valueBytes) =>
        BarrierOffset(paddedHeadDim, warpGroups, StagesFor(warpGroups), valueBytes);

    /// <summary>Byte offset of the barriers after <paramref name="tiles"/> Q tiles and <paramref name="stages"/> K and Vᵀ stages.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BarrierOffset(int paddedHeadDim, int tiles, int stages, int valueBytes) =>
        (tiles + stages * (1 + valueBytes)) * Rows * paddedHeadDim;

    /// <summary>Bytes of the barriers ("full" and "empty" per stage, one for Q), rounded up to 16 for the ones tile after them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BarrierBytes(int stages) => ((2 * stages + 1) * Mbarrier.Bytes + 15) / 16 * 16;

    /// <summary>Bytes of one V element the kernel reads for <paramref name="variant"/>: 2 for FP16 P·V, else 1 (FP8).</summary>
    public static int ValueBytes(AttentionVariant variant) => variant.HasFp16Values() ? 2 : 1;

    /// <summary>
    /// Warpgroups per block for a shape: each K/V tile a block loads is used by all of its warpgroups, so more of them
    /// divide the L2 → shared traffic (what bounded the one-warpgroup kernel on the H100: L2 throughput 89 %) and one
    /// warpgroup's softmax overlaps another's products, while fewer waste less on a ragged last block. Two per block and
    /// two blocks per SM (<see cref="BlocksPerSm"/>; 16 warps, 128 registers per thread, P·V's channel halves one after
    /// another: <see cref="SerialValueHalves"/>) measured fastest on the H100: as fast as four per block at hd128 4K–16K,
    /// 13 % faster at 1K and 5–10 % at hd64, where one block's prologue and epilogue overlap the other's products;
    /// four were 9–22 % faster than three (docs/performance.md). FP16 values at Dp = 128 take three: their 16 P registers
    /// push the 128-register kernels of two and four warpgroups into spills (132 bytes), and three (156 registers, none
    /// spilled) measured 478 / 531 kernel TOPS at 4K / 16K against 347 / 371 for two (H100, docs/hopper.md).
    /// </summary>
    /// <param name="qTiles">64-row query tiles per (batch, head).</param>
    /// <param name="requested">An explicit choice (1 to <see cref="MaxWarpGroups"/>), or 0 for the automatic one.</param>
    /// <param name="paddedHeadDim">64 or 128.</param>
    /// <param name="valueBytes">1 (FP8 P·V) or 2 (FP16 P·V): <see cref="ValueBytes"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="requested"/> is outside 0..<see cref="MaxWarpGroups"/>.</exception>
    public static int WarpGroupsFor(int qTiles, int requested, int paddedHeadDim, int valueBytes)
    {
        if (requested < 0 || requested > MaxWarpGroups)
            throw new ArgumentOutOfRangeException(nameof(requested), requested, $"warpgroups per block must be 0 (automatic) or 1..{MaxWarpGroups}.");
        if (requested > 0)
            return requested;
        return Math.Min(qTiles, valueBytes == 2 && paddedHeadDim == 128 ? 3 : DefaultWarpGroups);
    }

    /// <summary>Grid x: blocks of <paramref name="warpGroups"/> tiles covering <paramref name="qTiles"/> (the last may be ragged).</summary>
    public static int Blocks(int qTiles, int warpGroups) => (qTiles + warpGroups - 1) / warpGroups;

    /// <summary>The tensor maps of the kernel's <c>tensorMaps</c> parameter, in this order.</summary>
    public enum Map
    {
        /// <summary>INT8 Q as [B · Hq · NqPad rows, Dp bytes], boxes of Dp bytes × 64 rows.</summary>
        Q,

        /// <summary>INT8 K as [B · Hkv · NkPad rows, Dp bytes], boxes of Dp bytes × 64 rows.</summary>
        K,

        /// <summary>Vᵀ as [B · Hkv · Dp rows, NkPad · value bytes], boxes of 64 keys (64 or 128 bytes) × Dp rows.</summary>
        V,
    }

    /// <summary>Kernel entry: index math, the producer's copies, then the per-block products.</summary>
    /// <param name="p">Tensors and sizes (V in the FP8 layout for FP32 accumulation, or the FP16 one).</param>
    /// <param name="tensorMaps">The three tensor maps (<see cref="Map"/>), read by the copy engine; unused on the CPU.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    /// <param name="warpGroups">Warpgroups (64-row query tiles) per block, 1 to <see cref="MaxWarpGroups"/>, fixed at compile time.</param>
    /// <param name="valueBytes">1: FP8 P·V (v2); 2: FP16 P·V (the accurate mode). Fixed at compile time.</param>
    public static void Run(AttentionParams p, TensorMapParameter tensorMaps, SpecializedValue<int> paddedHeadDim, SpecializedValue<int> warpGroups,
        SpecializedValue<int> valueBytes) =>
        Attend(p, paddedHeadDim, warpGroups, valueBytes, packed: false);

    /// <summary>
    /// Kernel entry for packed sequences (varlen): <see cref="Run"/>'s body with grid (⌈max_seqlen_q / 64 / W⌉, Hq, B), block
    /// (x, h, s) taking query tiles of sequence s (<see cref="AttentionParams.QSequences"/>; blocks past its end exit at
    /// once), keys from its padded rows, causal bottom-right per sequence (Lk − Lq) — as <see cref="VarlenAttentionKernel"/>
    /// does on mma.sync.
    /// </summary>
    /// <param name="p">Tensors of batch 1 ([Hq, Tq] rows of the padded quantized layouts), sizes and the packed sequences.</param>
    /// <param name="tensorMaps">As for <see cref="Run"/>, over the packed quantized tensors.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    /// <param name="warpGroups">Warpgroups per block, fixed at compile time.</param>
    /// <param name="valueBytes">1 or 2, fixed at compile time.</param>
    public static void RunPacked(AttentionParams p, TensorMapParameter tensorMaps, SpecializedValue<int> paddedHeadDim,
        SpecializedValue<int> warpGroups, SpecializedValue<int> valueBytes) =>
        Attend(p, paddedHeadDim, warpGroups, valueBytes, packed: true);

    /// <summary>The kernel body; <paramref name="packed"/> is a constant of each entry point.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Attend(AttentionParams p, int paddedHeadDim, int warpGroups, int valueBytes, bool packed)
    {
        int dp = paddedHeadDim, groups = warpGroups, stages = StagesFor(groups), lead = LeadFor(stages), vBytes = valueBytes;
        bool wide = dp == 128, fp16Values = vBytes == 2;
        int tileWords = Rows * dp / 4, vTileWords = tileWords * vBytes;
        // One view of dynamic shared memory for the whole kernel: on ILGPU's CPU accelerator each GetDynamic call
        // returns a new buffer. The CPU launch adds the emulation's staging area at its end.
        var sharedBytes = SharedMemory.GetDynamic<byte>();
        var shared = sharedBytes.Cast<uint>();
        uint sharedBase = SharedWindow.SharedAddress(0);
        int barrierOffset = BarrierOffset(dp, groups, vBytes), onesOffset = barrierOffset + BarrierBytes(stages);
        uint barriers = sharedBase + (uint)barrierOffset;

        int tid = Group.IdxX, lane = Warp.LaneIdx;
        // The warp's index as lane 0 broadcasts it (as CUTLASS's warp-group index): ptxas then knows it, and the
        // warpgroup, query rows, block counts and descriptors derived from it, to be warp-uniform and may keep them in
        // uniform registers instead of recomputing them from the thread index every key block (history step 54).
        int warpIndex = Warp.Shuffle(tid >> 5, 0), warpGroup = warpIndex >> 2, warp = warpIndex & 3;
        int g = lane >> 2, t = lane & 3;
        bool causal = p.Causal != 0;
        // Causal: a head's blocks start with its last query tiles, which see the most keys, so the lighter ones fill the
        // tail of the grid instead of the heaviest finishing last. The heaviest tiles of groups of heads first (less tail)
        // measured 4–9% slower: a head's blocks running together share its K and V in L2 (docs/performance.md, step 64).
        int tileBlock = causal ? Grid.DimX - 1 - Grid.IdxX : Grid.IdxX;
        int qTile = tileBlock * groups + warpGroup, h = Grid.IdxY, b = Grid.IdxZ;
        // Packed: sequence b's tokens, its rows from its padded start in the quantized tensors (of batch 1), its own
        // lengths and bottom-right causal offset in p from here on; blocks past its last tile exit before any barrier.
        int qFirstRow = 0, kFirstRow = 0, firstToken = 0, lseRows = p.Nq;
        if (packed)
        {
            var querySpan = p.QSequences.Resolve(b, p.Nq);
            var keySpan = p.KSequences.Resolve(b, p.Nk);
            if (tileBlock * groups * Rows >= querySpan.Length)
                return;
            p.Nq = querySpan.Length;
            p.Nk = keySpan.Length;
            p.CausalOffset = keySpan.Length - querySpan.Length;
            qFirstRow = querySpan.PaddedStart;
            kFirstRow = keySpan.PaddedStart;
            firstToken = querySpan.TokenStart;
        }
        int qTilesLayout = p.NqPad / Rows, qTiles = packed ? (p.Nq + Rows - 1) / Rows : qTilesLayout;
        // A ragged last block's spare warpgroups wait and release with the others but compute nothing.
        bool active = qTile < qTiles;
        int kvHead = h / (p.HeadsQ / p.HeadsKv);
        int warpFirstRow = qTile * Rows + warp * SageConstants.WarpRows;
        int rowLo = warpFirstRow + g, rowHi = rowLo + 8;
        // K/V head in the quantized layouts, whose batch is 1 when packed.
        long kvHeadIndex = packed ? kvHead : (long)b * p.HeadsKv + kvHead;
        int kBlocksLayout = p.NkPad / KeysPerBlock, kBlocks = packed ? (p.Nk + KeysPerBlock - 1) / KeysPerBlock : kBlocksLayout;

        // Causal: blocks past a tile's last visible key are skipped; the block walks as far as its last active tile.
        int visitBlocks = kBlocks, blockBlocks = kBlocks;
        int activeGroups = Math.Min(groups, qTiles - tileBlock * groups);
        if (causal)
        {
            visitBlocks = VisibleBlocks(qTile, kBlocks, p.CausalOffset, packed);
            blockBlocks = VisibleBlocks(tileBlock * groups + activeGroups - 1, kBlocks, p.CausalOffset, packed);
        }
        if (!active)
            visitBlocks = 0;

        var producer = new Producer(p, barriers, kvHeadIndex, kFirstRow, dp, vBytes, groups, stages, blockBlocks);
        InitShared(shared, tid, barriers, stages, 4 * groups, onesTile: !fp16Values, onesOffset);
        if (tid == 0)
        {
            producer.LoadQ(shared, packed
                ? (long)h * p.NqPad + qFirstRow + (long)tileBlock * groups * Rows
                : ((long)b * p.HeadsQ + h) * p.NqPad + (long)tileBlock * groups * Rows, activeGroups);
            for (int j = 0; j < lead; j++)
                producer.LoadBlock(shared, j);
        }

        bool serialHalves = SerialValueHalves(groups);
        float qScale = active
            ? p.QScale[packed
                ? (long)h * (qTilesLayout * SageConstants.QScaleSlotsPerTile) + (qFirstRow / Rows + qTile) * SageConstants.QScaleSlotsPerTile + warp * 8 + g
                : ((long)b * p.HeadsQ + h) * (qTiles * SageConstants.QScaleSlotsPerTile) + qTile * SageConstants.QScaleSlotsPerTile + warp * 8 + g]
            : 0f;
        long kScaleBase = packed
            ? (kvHeadIndex * kBlocksLayout + kFirstRow / KeysPerBlock) * SageConstants.KScaleSlotsPerBlock + t
            : kvHeadIndex * kBlocks * SageConstants.KScaleSlotsPerBlock + t;
        // The K scale of the next block is loaded one block ahead: waiting for it at its use stalled ~6 % of warp time.
        float kScale = p.KScale[kScaleBase];
        // A view that steps one block along per key block: the next scale is a load at offset 0 (a 64-bit add per
        // block instead of a 64-bit index computation).
        var nextKScales = p.KScale.SubView(kScaleBase);
        // Q and K tiles have rows of Dp bytes, Vᵀ tiles rows of 64 keys (64 or 128 bytes); stages and the two 64-channel
        // halves of a Vᵀ tile are whole numbers of 8-row groups apart (steps in 16-byte descriptor units).
        uint qDesc = WarpGroupMma.DescriptorLow(sharedBase + (uint)(warpGroup * tileWords * 4));
        uint kDesc0 = WarpGroupMma.DescriptorLow(sharedBase + (uint)(groups * tileWords * 4));
        uint vDesc0 = WarpGroupMma.DescriptorLow(sharedBase + (uint)((groups + stages) * tileWords * 4));
        uint qkHigh = WarpGroupMma.DescriptorHigh(dp), vHigh = WarpGroupMma.DescriptorHigh(KeysPerBlock * vBytes);
        uint onesDesc = WarpGroupMma.OnesDescriptorLow(sharedBase + (uint)onesOffset);
        uint stageStep = (uint)(tileWords / 4), vStageStep = (uint)(vTileWords / 4), vHalfStep = (uint)(64 * KeysPerBlock * vBytes / 16);
        var output = default(OutputTile);
        // FP16 values: O lives in two wgmma accumulators (channels 0..63, 64..127) that the P·V products add into.
        var outputLow = default(WarpGroupFloatAccumulator);
        var outputHigh = default(WarpGroupFloatAccumulator);
        var scores = default(ScoreTile);
        var pFrag = default(PFragments);
        float shift = fp16Values ? 0f : SageConstants.Fp8Shift;
        var softmax = new HopperRowSoftmax(shift);
        int firstMasked = Tile.FirstMaskedBlock(warpFirstRow, p.Nk, causal, p.CausalOffset);
        Mbarrier.WaitBlock(producer.QBarrier, 0);

        if (Pipelined(groups, vBytes))
        {
            var keys = new KeyLoop(p, sharedBytes, tid, stages, lead, visitBlocks, blockBlocks, causal, wide, warpFirstRow, firstMasked, qScale,
                kScaleBase, qDesc, kDesc0, qkHigh, stageStep, vDesc0, vHigh, vStageStep, vHalfStep);
            keys.RunFp16Pipelined(shared, producer, ref softmax, out outputLow, out outputHigh);
        }
        else
        {
            for (int kb = 0; kb < blockBlocks; kb++)
            {
                int stage = kb & (stages - 1);
                Mbarrier.WaitBlock(producer.Full(stage), (kb / stages) & 1);
                // Uniform per warpgroup, as wgmma requires. Each product is waited for right after its issue: a software
                // pipeline of the FP8 path that kept them in flight across the softmax needed ~234 registers (W ≤ 2) and
                // measured slower than more warpgroups overlapping one another (docs/performance.md, steps 13 and 29). FP16 values
                // at three warpgroups take the pipelined loop instead (Pipelined).
                float nextKScale = kScale;
                if (kb + 1 < kBlocks)
                {
                    nextKScales = nextKScales.SubView(SageConstants.KScaleSlotsPerBlock);
                    nextKScale = nextKScales[0];
                }
                if (kb < visitBlocks)
                {
                    float scale = qScale * kScale;
                    IssueScores(out var logits, qDesc, kDesc0 + (uint)stage * stageStep, qkHigh, wide, sharedBytes);
                    // The producer's copies go out while the scores are on the tensor cores: issued at the top of the
                    // block, they held thread 0's warp back and its warpgroup waited for it at the first wgmma.
                    if (tid == 0)
                        producer.LoadBlock(shared, kb + lead);
                    WarpGroupMma.WaitAll();
                    softmax.Step(logits, scale, kb * KeysPerBlock, p, causal, warpFirstRow, kb >= firstMasked, ref scores, partialSums: fp16Values);
                    uint vDesc = vDesc0 + (uint)stage * vStageStep;
                    if (fp16Values)
                    {
                        Tile.PackFp16(scores, ref pFrag);
                        HopperTile.Rescale(ref outputLow, softmax.RescaleLo, softmax.RescaleHi);
                        if (wide)
                            HopperTile.Rescale(ref outputHigh, softmax.RescaleLo, softmax.RescaleHi);
                        AccumulateFp16Values(pFrag, vDesc, vHigh, vHalfStep, wide, sharedBytes, ref outputLow, ref outputHigh);
                        WarpGroupMma.WaitAll();
                    }
                    else if (serialHalves && wide)
                    {
                        Tile.PackFp8(scores, ref pFrag);
                        IssueValueHalf(pFrag, vDesc, vHigh, sharedBytes, out var low);
                        IssueRowSums(pFrag, onesDesc, sharedBytes, out float sumLo, out float sumHi);
                        WarpGroupMma.Commit();
                        WarpGroupMma.WaitAll();
                        softmax.AddBlockSums(sumLo, sumHi);
                        HopperTile.RescaleAddLowChannels(ref output, low, softmax.RescaleLo, softmax.RescaleHi);
                        IssueValueHalf(pFrag, vDesc + vHalfStep, vHigh, sharedBytes, out var high);
                        WarpGroupMma.Commit();
                        WarpGroupMma.WaitAll();
                        HopperTile.RescaleAddHighChannels(ref output, high, softmax.RescaleLo, softmax.RescaleHi);
                    }
                    else
                    {
                        Tile.PackFp8(scores, ref pFrag);
                        IssueValues(pFrag, vDesc, vHigh, vHalfStep, onesDesc, wide, sharedBytes, out var low, out var high, out float sumLo,
                            out float sumHi);
                        WarpGroupMma.WaitAll();
                        softmax.AddBlockSums(sumLo, sumHi);
                        AddValues(ref output, low, high, softmax.RescaleLo, softmax.RescaleHi, wide);
                    }
                }
                else if (tid == 0)
                    producer.LoadBlock(shared, kb + lead);
                kScale = nextKScale;
                // The warp's products of this stage have retired: the producer may refill it.
                Mbarrier.ArriveOncePerWarp(producer.Empty(stage));
            }
        }
        if (!active)
            return;
        if (fp16Values)
        {
            HopperTile.SetLowChannels(ref output, outputLow);
            if (wide)
                HopperTile.SetHighChannels(ref output, outputHigh);
        }

        softmax.RowSums(partialSums: fp16Values, out float rowSumLo, out float rowSumHi);
        // Packed: a row that sees no key (cu_seqlens giving a sequence fewer keys than queries) gets output 0 and LSE −inf,
        // as on mma.sync. V scales and means are per (sequence, kv head); output and LSE rows follow the input's tokens.
        bool emptyLo = packed && (p.Nk <= 0 || (causal && rowLo + p.CausalOffset < 0));
        bool emptyHi = packed && (p.Nk <= 0 || (causal && rowHi + p.CausalOffset < 0));
        long channelBase = packed ? ((long)b * p.HeadsKv + kvHead) * dp : kvHeadIndex * dp;
        long outputBase = packed ? h * p.OStrideHead + (long)firstToken * p.OStrideToken : b * p.OStrideBatch + h * p.OStrideHead;
        Tile.WriteRows(p, output, rowLo < p.Nq, outputBase + rowLo * p.OStrideToken, emptyLo ? 0f : 1f / rowSumLo,
            rowHi < p.Nq, outputBase + rowHi * p.OStrideToken, emptyHi ? 0f : 1f / rowSumHi, channelBase, t, wide);
        if (p.WriteLse != 0 && t == 0)
        {
            long lseBase = packed ? (long)h * lseRows + firstToken : ((long)b * p.HeadsQ + h) * p.Nq;
            if (rowLo < p.Nq)
                AttentionKernel.WriteLse(p, lseBase + rowLo, emptyLo, rowSumLo, softmax.MaxLo - shift);
            if (rowHi < p.Nq)
                AttentionKernel.WriteLse(p, lseBase + rowHi, emptyHi, rowSumHi, softmax.MaxHi - shift);
        }
    }

    /// <summary>
    /// A block's set-up before its warps split: the e4m3 ones tile of the row sums (FP8 values), the ring's "full" and Q
    /// barriers (one arrival: the producer's, with the byte count) and "empty" barriers (<paramref name="consumerWarps"/>
    /// arrivals), then a block barrier so every thread sees them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InitShared(ArrayView<uint> shared, int tid, uint barriers, int stages, int consumerWarps, bool onesTile, int onesOffset)
    {
        if (onesTile && tid < WarpGroupMma.OnesTileBytes / 4)
        {
            shared[onesOffset / 4 + tid] = WarpGroupMma.E4M3OnesWord;
            SharedWindow.FenceProxyAsync();
        }
        if (tid == 0)
        {
            for (int i = 0; i < 2 * stages + 1; i++)
                Mbarrier.Init(barriers + (uint)(i * Mbarrier.Bytes), i >= stages && i < 2 * stages ? consumerWarps : 1);
            Mbarrier.FenceInit();
        }
        Group.Barrier();
    }

    /// <summary>Issues S = Q·Kᵀ for one key block (Dp / 32 chained k32 wgmma, one commit group).</summary>
    private static void IssueScores(out WarpGroupIntAccumulator logits, uint qDesc, uint kDesc, uint high, bool wide, ArrayView<byte> shared)
    {
        if (wide)
            WarpGroupMma.IssueS8K128(out logits, qDesc, kDesc, high, shared);
        else
            WarpGroupMma.IssueS8K64(out logits, qDesc, kDesc, high, shared);
    }

    /// <summary>
    /// Issues P·V of one key block: P (FP8, registers) times the Vᵀ tile named by <paramref name="vDesc"/> and
    /// <paramref name="high"/>, one fresh FP32 accumulator per 64 channels (<paramref name="low"/>, <paramref name="upper"/>),
    /// and P's row sums, committed as one group.
    /// </summary>
    private static void IssueValues(in PFragments pFrag, uint vDesc, uint high, uint halfStep, uint onesDesc, bool wide, ArrayView<byte> shared,
        out WarpGroupFloatAccumulator low, out WarpGroupFloatAccumulator upper, out float sumLo, out float sumHi)
    {
        IssueValueHalf(pFrag, vDesc, high, shared, out low);
        IssueRowSums(pFrag, onesDesc, shared, out sumLo, out sumHi);
        upper = default;
        if (wide)
            IssueValueHalf(pFrag, vDesc + halfStep, high, shared, out upper);
        WarpGroupMma.Commit();
    }

    /// <summary>Issues the row sums of FP8 P (rows g and g + 8, whole) against the ones tile, after a P·V half that fenced P; the caller commits.</summary>
    private static void IssueRowSums(in PFragments pFrag, uint onesDesc, ArrayView<byte> shared, out float sumLo, out float sumHi)
    {
        Fp8Steps(pFrag, out var a0, out var a1);
        WarpGroupMma.IssueE4M3RowSums(out sumLo, out sumHi, a0, a1, onesDesc, shared);
    }

    /// <summary>Issues P·V of one key block into one 64-channel accumulator (the Vᵀ half <paramref name="vDesc"/> names); the caller commits.</summary>
    private static void IssueValueHalf(in PFragments pFrag, uint vDesc, uint high, ArrayView<byte> shared, out WarpGroupFloatAccumulator acc)
    {
        Fp8Steps(pFrag, out var a0, out var a1);
        WarpGroupMma.IssueE4M3K64(out acc, a0, a1, vDesc, high, shared);
    }

    /// <summary>FP8 P as the A operands of its two k32 steps (keys 0..31, 32..63), for P·V and the row sums.</summary>
    private static void Fp8Steps(in PFragments pFrag, out AFrag a0, out AFrag a1)
    {
        a0.R0 = pFrag.S0R0; a0.R1 = pFrag.S0R1; a0.R2 = pFrag.S0R2; a0.R3 = pFrag.S0R3;
        a1.R0 = pFrag.S1R0; a1.R1 = pFrag.S1R1; a1.R2 = pFrag.S1R2; a1.R3 = pFrag.S1R3;
    }

    /// <summary>
    /// Issues O += P·V of one key block with FP16 P (registers) and the FP16 Vᵀ tile named by <paramref name="vDesc"/>,
    /// accumulating into the (already rescaled) output accumulators of channels 0..63 and, at Dp = 128, 64..127; commits.
    /// </summary>
    private static void AccumulateFp16Values(in PFragments pFrag, uint vDesc, uint high, uint halfStep, bool wide, ArrayView<byte> shared,
        ref WarpGroupFloatAccumulator low, ref WarpGroupFloatAccumulator upper)
    {
        AFrag a0, a1, a2, a3;
        a0.R0 = pFrag.S0R0; a0.R1 = pFrag.S0R1; a0.R2 = pFrag.S0R2; a0.R3 = pFrag.S0R3;
        a1.R0 = pFrag.S1R0; a1.R1 = pFrag.S1R1; a1.R2 = pFrag.S1R2; a1.R3 = pFrag.S1R3;
        a2.R0 = pFrag.S2R0; a2.R1 = pFrag.S2R1; a2.R2 = pFrag.S2R2; a2.R3 = pFrag.S2R3;
        a3.R0 = pFrag.S3R0; a3.R1 = pFrag.S3R1; a3.R2 = pFrag.S3R2; a3.R3 = pFrag.S3R3;
        WarpGroupMma.IssueF16K64(ref low, a0, a1, a2, a3, vDesc, high, shared);
        if (wide)
            WarpGroupMma.IssueF16K64(ref upper, a0, a1, a2, a3, vDesc + halfStep, high, shared);
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

    /// <summary>
    /// Causal: key blocks up to the one holding the last key query tile <paramref name="tile"/>'s last row sees; none when
    /// that row sees no key (only packed sequences have a negative offset).
    /// </summary>
    private static int VisibleBlocks(int tile, int kBlocks, int causalOffset, bool packed)
    {
        int lastVisible = tile * Rows + Rows - 1 + causalOffset;
        return packed && lastVisible < 0 ? 0 : Math.Min(kBlocks, lastVisible / KeysPerBlock + 1);
    }

    /// <summary>
    /// The copies thread 0 issues: the block's Q tiles, and the K and Vᵀ tiles of key block j into stage j mod
    /// stages once every warp has released that stage's previous block.
    /// </summary>
    private readonly struct Producer
    {
        private readonly ArrayView<uint> _q, _k, _v;
        private readonly long _qMap, _kMap, _vMap;
        private readonly uint _barriers;
        private readonly int _dp, _vBytes, _groups, _stages, _tileWords, _kRow0, _vRow0, _vX0, _vRowWords, _blocks;

        public Producer(in AttentionParams p, uint barriers, long kvHeadIndex, int firstKey, int dp, int vBytes, int groups, int stages, int blocks)
        {
            _q = p.Q;
            _k = p.K;
            _v = p.V;
            _vRowWords = p.NkPad * vBytes / 4;
            _vBytes = vBytes;
            _qMap = TensorCopy.MapAddress((int)Map.Q);
            _kMap = TensorCopy.MapAddress((int)Map.K);
            _vMap = TensorCopy.MapAddress((int)Map.V);
            _barriers = barriers;
            _dp = dp;
            _groups = groups;
            _stages = stages;
            _tileWords = Rows * dp / 4;
            // A packed sequence's keys start at its padded row of K and at that column of Vᵀ.
            _kRow0 = (int)(kvHeadIndex * p.NkPad) + firstKey;
            _vX0 = firstKey * vBytes;
            _vRow0 = (int)(kvHeadIndex * dp);
            _blocks = blocks;
        }

        /// <summary>The "full" barrier of stage <paramref name="stage"/>: its K and Vᵀ tiles have landed.</summary>
        public uint Full(int stage) => _barriers + (uint)(stage * Mbarrier.Bytes);

        /// <summary>The "empty" barrier of stage <paramref name="stage"/>: every warp is done with it.</summary>
        public uint Empty(int stage) => _barriers + (uint)((_stages + stage) * Mbarrier.Bytes);

        /// <summary>The barrier of the Q tiles.</summary>
        public uint QBarrier => _barriers + (uint)(2 * _stages * Mbarrier.Bytes);

        /// <summary>Loads the <paramref name="tiles"/> Q tiles of the block, whose first row is <paramref name="firstRow"/>.</summary>
        public void LoadQ(ArrayView<uint> shared, long firstRow, int tiles)
        {
            Mbarrier.ArriveExpectBytes(QBarrier, tiles * Rows * _dp);
            for (int w = 0; w < tiles; w++)
                TensorCopy.LoadTile(shared, w * _tileWords, QBarrier, _qMap, 0, (int)(firstRow + w * Rows), _q, _dp / 4, _dp, Rows);
        }

        /// <summary>Loads key block <paramref name="j"/> (if below the block's count) into its stage.</summary>
        public void LoadBlock(ArrayView<uint> shared, int j)
        {
            if (j >= _blocks)
                return;
            int stage = j & (_stages - 1);
            if (j >= _stages)
                Mbarrier.Wait(Empty(stage), (j / _stages - 1) & 1);
            uint full = Full(stage);
            Mbarrier.ArriveExpectBytes(full, (1 + _vBytes) * KeysPerBlock * _dp);
            int kWord = (_groups + stage) * _tileWords, vWord = (_groups + _stages) * _tileWords + stage * _tileWords * _vBytes;
            int vRowBytes = KeysPerBlock * _vBytes;
            TensorCopy.LoadTile(shared, kWord, full, _kMap, 0, _kRow0 + j * KeysPerBlock, _k, _dp / 4, _dp, KeysPerBlock);
            TensorCopy.LoadTile(shared, vWord, full, _vMap, _vX0 + j * vRowBytes, _vRow0, _v, _vRowWords, vRowBytes, _dp);
        }
    }
}
