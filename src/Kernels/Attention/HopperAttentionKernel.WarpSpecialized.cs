using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

public static partial class HopperAttentionKernel
{
    /// <summary>Consumer warpgroups (64-row query tiles) of a warp-specialized block.</summary>
    public const int SpecializedConsumers = 2;

    /// <summary>Threads of a warp-specialized block: a producer warpgroup and <see cref="SpecializedConsumers"/> consumers.</summary>
    public const int SpecializedThreads = (1 + SpecializedConsumers) * Threads;

    /// <summary>K/Vᵀ stages of a warp-specialized block (one block per SM, so the ring is the SM's).</summary>
    public const int SpecializedStages = 8;

    /// <summary>
    /// Whether the consumers take turns at the tensor cores (<see cref="WarpGroupTurns"/>, FA3's ping-pong). Off: on the
    /// H100 turns cost this kernel 2–4% at hd128 (docs/hopper.md). A switch for measuring: the environment variable
    /// <c>SAGEATTN_HOPPER_TURNS=1</c>, read once per process, turns them on (ILGPU folds the value into the compiled kernel).
    /// </summary>
    private static readonly bool SpecializedTurns = Environment.GetEnvironmentVariable("SAGEATTN_HOPPER_TURNS") == "1";

    /// <summary>
    /// Dynamic shared memory of a warp-specialized block: the two Q tiles, <see cref="SpecializedStages"/> K and FP8 Vᵀ
    /// stages, the barriers and the ones tile (hd128: 144 KB).
    /// </summary>
    /// <param name="paddedHeadDim">64 or 128.</param>
    public static int SpecializedSharedBytes(int paddedHeadDim) =>
        BarrierOffset(paddedHeadDim, SpecializedConsumers, SpecializedStages, 1) + BarrierBytes(SpecializedStages) + WarpGroupMma.OnesTileBytes;

    /// <summary>
    /// The FP8-values kernel in FA3's layout (opt-in: <c>SageAttentionOptions.HopperWarpSpecialized</c>): one block of three warpgroups
    /// per SM. Warpgroup 0 is the producer: it gives its registers back (<see cref="RegisterBudget"/>) and one thread issues
    /// every copy of the block (Q tiles, then the K/Vᵀ ring), so no consumer warp does producer work. Warpgroups 1 and 2
    /// are consumers of one 64-row query tile each, at 240 registers: per key block j they issue Q·Kᵀ of j + 1 and P·V of
    /// j together, run the softmax of j + 1 while P·V of j is on the tensor cores, then fold P·V of j into O (FP32
    /// two-level accumulation, P·V's accumulator, P and its row sums in resident registers: <see cref="ResidentFp8Pv"/>);
    /// optionally they take turns issuing (<see cref="WarpGroupTurns"/>, <see cref="SpecializedTurns"/>).
    /// Same quantized inputs, grid order and outputs as <see cref="Run"/> with two warpgroups; dense calls only.
    /// </summary>
    /// <param name="p">Tensors and sizes (V in the FP8 layout for FP32 accumulation).</param>
    /// <param name="tensorMaps">The three tensor maps (<see cref="Map"/>); unused on the CPU.</param>
    /// <param name="paddedHeadDim">64 or 128, fixed at compile time.</param>
    public static void RunWarpSpecialized(AttentionParams p, TensorMapParameter tensorMaps, SpecializedValue<int> paddedHeadDim)
    {
        int dp = paddedHeadDim;
        const int groups = SpecializedConsumers, stages = SpecializedStages;
        bool wide = dp == 128;
        int tileWords = Rows * dp / 4;
        var sharedBytes = SharedMemory.GetDynamic<byte>();
        var shared = sharedBytes.Cast<uint>();
        uint sharedBase = SharedWindow.SharedAddress(0);
        int barrierOffset = BarrierOffset(dp, groups, stages, 1), onesOffset = barrierOffset + BarrierBytes(stages);
        uint barriers = sharedBase + (uint)barrierOffset;

        int tid = Group.IdxX;
        int warpIndex = Warp.Shuffle(tid >> 5, 0), warpGroup = warpIndex >> 2;
        bool causal = p.Causal != 0;
        int tileBlock = causal ? Grid.DimX - 1 - Grid.IdxX : Grid.IdxX;
        int h = Grid.IdxY, b = Grid.IdxZ;
        int qTiles = p.NqPad / Rows, kBlocks = p.NkPad / KeysPerBlock;
        int activeGroups = Math.Min(groups, qTiles - tileBlock * groups);
        long kvHeadIndex = (long)b * p.HeadsKv + h / (p.HeadsQ / p.HeadsKv);
        int blockBlocks = causal ? VisibleBlocks(tileBlock * groups + activeGroups - 1, kBlocks, p.CausalOffset, false) : kBlocks;
        var producer = new Producer(p, barriers, kvHeadIndex, 0, dp, 1, groups, stages, blockBlocks);
        InitShared(shared, tid, barriers, stages, 4 * groups, onesTile: true, onesOffset);

        long qFirstRow = ((long)b * p.HeadsQ + h) * p.NqPad + (long)tileBlock * groups * Rows;
        if (warpGroup == 0)
        {
            RegisterBudget.ShrinkToProducer();
            Produce(producer, shared, tid, qFirstRow, activeGroups, blockBlocks, stages);
            return;
        }
        RegisterBudget.GrowToConsumer();

        int consumer = warpGroup - 1, warp = warpIndex & 3, lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int qTile = tileBlock * groups + consumer;
        bool active = qTile < qTiles;
        int warpFirstRow = qTile * Rows + warp * SageConstants.WarpRows;
        int visitBlocks = !active ? 0 : causal ? VisibleBlocks(qTile, kBlocks, p.CausalOffset, false) : kBlocks;
        float qScale = active
            ? p.QScale[((long)b * p.HeadsQ + h) * (qTiles * SageConstants.QScaleSlotsPerTile) + qTile * SageConstants.QScaleSlotsPerTile + warp * 8 + g]
            : 0f;
        long kScaleBase = kvHeadIndex * kBlocks * SageConstants.KScaleSlotsPerBlock + t;
        var keys = new SpecializedKeyLoop(p, sharedBytes, consumer, visitBlocks, blockBlocks, causal, wide, warpFirstRow,
            Tile.FirstMaskedBlock(warpFirstRow, p.Nk, causal, p.CausalOffset), qScale, kScaleBase,
            WarpGroupMma.DescriptorLow(sharedBase + (uint)(consumer * tileWords * 4)),
            WarpGroupMma.DescriptorLow(sharedBase + (uint)(groups * tileWords * 4)), WarpGroupMma.DescriptorHigh(dp), (uint)(tileWords / 4),
            WarpGroupMma.DescriptorLow(sharedBase + (uint)((groups + stages) * tileWords * 4)), WarpGroupMma.DescriptorHigh(KeysPerBlock),
            (uint)(64 * KeysPerBlock / 16), WarpGroupMma.OnesDescriptorLow(sharedBase + (uint)onesOffset));
        var softmax = new HopperRowSoftmax(SageConstants.Fp8Shift);
        var output = default(OutputTile);
        Mbarrier.WaitBlock(producer.QBarrier, 0);
        keys.Run(producer, ref softmax, ref output);
        if (!active)
            return;

        int rowLo = warpFirstRow + g, rowHi = rowLo + 8;
        softmax.RowSums(partialSums: false, out float rowSumLo, out float rowSumHi);
        long outputBase = b * p.OStrideBatch + h * p.OStrideHead;
        Tile.WriteRows(p, output, rowLo < p.Nq, outputBase + rowLo * p.OStrideToken, 1f / rowSumLo,
            rowHi < p.Nq, outputBase + rowHi * p.OStrideToken, 1f / rowSumHi, kvHeadIndex * dp, t, wide);
        if (p.WriteLse != 0 && t == 0)
        {
            long lseBase = ((long)b * p.HeadsQ + h) * p.Nq;
            if (rowLo < p.Nq)
                AttentionKernel.WriteLse(p, lseBase + rowLo, false, rowSumLo, softmax.MaxLo - SageConstants.Fp8Shift);
            if (rowHi < p.Nq)
                AttentionKernel.WriteLse(p, lseBase + rowHi, false, rowSumHi, softmax.MaxHi - SageConstants.Fp8Shift);
        }
    }

    /// <summary>
    /// The producer warpgroup: thread 0 loads the Q tiles, then every key block into the ring as soon as the consumers
    /// have released its stage. On the CPU, where a "full" wait is a block barrier, the whole warpgroup takes part in the
    /// consumers' barriers instead: key block j + 1 is copied before the barrier of block j.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Produce(in Producer producer, ArrayView<uint> shared, int tid, long qFirstRow, int tiles, int blocks, int stages)
    {
        if (CudaAsm.IsSupported)
        {
            if (tid == 0)
            {
                producer.LoadQ(shared, qFirstRow, tiles);
                for (int j = 0; j < blocks; j++)
                    producer.LoadBlock(shared, j);
            }
            return;
        }
        if (tid == 0)
        {
            producer.LoadQ(shared, qFirstRow, tiles);
            producer.LoadBlock(shared, 0);
        }
        Mbarrier.WaitBlock(producer.QBarrier, 0);
        for (int j = 0; j < blocks; j++)
        {
            if (tid == 0)
                producer.LoadBlock(shared, j + 1);
            Mbarrier.WaitBlock(producer.Full(j & (stages - 1)), (j / stages) & 1);
        }
    }

    /// <summary>Turns a consumer takes over <paramref name="blocks"/> key blocks: Q·Kᵀ of the first alone, Q·Kᵀ of j + 1 with P·V of j, P·V of the last alone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int TurnsFor(int blocks) => blocks > 0 ? blocks + 1 : 0;

    /// <summary>One consumer warpgroup's walk over the key blocks of the warp-specialized kernel.</summary>
    private readonly struct SpecializedKeyLoop
    {
        private readonly AttentionParams _p;
        private readonly ArrayView<byte> _tiles;
        private readonly int _consumer, _visitBlocks, _blockBlocks, _warpFirstRow, _firstMasked;
        private readonly bool _causal, _wide;
        private readonly float _qScale;
        private readonly long _kScaleBase;
        private readonly uint _qDesc, _kDesc0, _qkHigh, _stageStep, _vDesc0, _vHigh, _vHalfStep, _onesDesc;

        public SpecializedKeyLoop(in AttentionParams p, ArrayView<byte> tiles, int consumer, int visitBlocks, int blockBlocks, bool causal,
            bool wide, int warpFirstRow, int firstMasked, float qScale, long kScaleBase, uint qDesc, uint kDesc0, uint qkHigh, uint stageStep,
            uint vDesc0, uint vHigh, uint vHalfStep, uint onesDesc)
        {
            _p = p;
            _tiles = tiles;
            _consumer = consumer;
            _visitBlocks = visitBlocks;
            _blockBlocks = blockBlocks;
            _causal = causal;
            _wide = wide;
            _warpFirstRow = warpFirstRow;
            _firstMasked = firstMasked;
            _qScale = qScale;
            _kScaleBase = kScaleBase;
            _qDesc = qDesc;
            _kDesc0 = kDesc0;
            _qkHigh = qkHigh;
            _stageStep = stageStep;
            _vDesc0 = vDesc0;
            _vHigh = vHigh;
            _vHalfStep = vHalfStep;
            _onesDesc = onesDesc;
        }

        /// <summary>
        /// Walks the block's key blocks: the visited ones pipelined (Q·Kᵀ of j + 1 and P·V of j in flight together, the
        /// softmax of j + 1 in P·V's shadow), the rest only waited for and released so the producer's ring keeps its pace;
        /// a consumer with fewer visited blocks (causal, or the spare one of a ragged block) takes empty turns so both take
        /// the same number. The Vᵀ stage of block j is the K stage's index: both rings have <see cref="SpecializedStages"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(in Producer producer, ref HopperRowSoftmax softmax, ref OutputTile output)
        {
            const int stages = SpecializedStages;
            bool turns = SpecializedTurns;
            var resident = default(ResidentFp8PvState);
            ResidentFp8Pv.Declare(ref resident);
            var scores = default(ScoreTile);
            var pFrag = default(PFragments);
            if (turns)
                WarpGroupTurns.Start(_consumer);
            // An FP8 Vᵀ tile (Dp rows of 64 one-byte keys) is the size of a K tile, so both rings step alike.
            uint vStageStep = _stageStep;
            var kScales = _p.KScale.SubView(_kScaleBase);
            int kb = 0;
            if (_visitBlocks > 0)
            {
                Mbarrier.WaitBlock(producer.Full(0), 0);
                if (turns)
                    WarpGroupTurns.Take(_consumer);
                IssueScores(out var firstLogits, _qDesc, _kDesc0, _qkHigh, _wide, _tiles);
                if (turns)
                    WarpGroupTurns.Pass(_consumer);
                WarpGroupMma.WaitAll();
                softmax.Step(firstLogits, _qScale * kScales[0], 0, _p, _causal, _warpFirstRow, _firstMasked <= 0, ref scores, partialSums: false);
                Tile.PackFp8(scores, ref pFrag);
                Fp8Steps(pFrag, out var a0, out var a1);
                ResidentFp8Pv.SetP(a0, a1, ref resident);

                for (; kb + 1 < _visitBlocks; kb++)
                {
                    int stage = kb & (stages - 1), next = (kb + 1) & (stages - 1);
                    kScales = kScales.SubView(SageConstants.KScaleSlotsPerBlock);
                    float kScale = kScales[0];
                    // O and l take block j's factor when its P·V retires, after the softmax of j + 1 replaced it.
                    float rescaleLo = softmax.RescaleLo, rescaleHi = softmax.RescaleHi;
                    Mbarrier.WaitBlock(producer.Full(next), ((kb + 1) / stages) & 1);
                    if (turns)
                        WarpGroupTurns.Take(_consumer);
                    IssueScores(out var logits, _qDesc, _kDesc0 + (uint)next * _stageStep, _qkHigh, _wide, _tiles);
                    ResidentFp8Pv.IssueValues(_vDesc0 + (uint)stage * vStageStep, _vHigh, _vHalfStep, _onesDesc, _wide, _tiles, ref resident);
                    WarpGroupMma.Commit();
                    if (turns)
                        WarpGroupTurns.Pass(_consumer);
                    WarpGroupMma.WaitAllButLatest();
                    softmax.Step(logits, _qScale * kScale, (kb + 1) * KeysPerBlock, _p, _causal, _warpFirstRow, kb + 1 >= _firstMasked, ref scores,
                        partialSums: false);
                    Tile.PackFp8(scores, ref pFrag);
                    WarpGroupMma.WaitAll();
                    Mbarrier.ArriveOncePerWarp(producer.Empty(stage));
                    FoldValues(resident, rescaleLo, rescaleHi, ref softmax, ref output);
                    Fp8Steps(pFrag, out var n0, out var n1);
                    ResidentFp8Pv.SetP(n0, n1, ref resident);
                }

                int last = kb & (stages - 1);
                float lastLo = softmax.RescaleLo, lastHi = softmax.RescaleHi;
                if (turns)
                    WarpGroupTurns.Take(_consumer);
                ResidentFp8Pv.IssueValues(_vDesc0 + (uint)last * vStageStep, _vHigh, _vHalfStep, _onesDesc, _wide, _tiles, ref resident);
                WarpGroupMma.Commit();
                if (turns)
                    WarpGroupTurns.Pass(_consumer);
                WarpGroupMma.WaitAll();
                Mbarrier.ArriveOncePerWarp(producer.Empty(last));
                FoldValues(resident, lastLo, lastHi, ref softmax, ref output);
                kb++;
            }

            // Both consumers take TurnsFor(blocks the block walks) turns. One that visited fewer (causal: one block fewer; the
            // spare consumer of a ragged block: none) takes its missing turns one per block as it releases the rest, then any
            // left: taking them all before releasing would hang once the other's turns wait on a stage only this consumer
            // still holds.
            int missing = turns ? TurnsFor(_blockBlocks) - TurnsFor(_visitBlocks) : 0;
            for (; kb < _blockBlocks; kb++)
            {
                int stage = kb & (stages - 1);
                if (missing > 0)
                {
                    WarpGroupTurns.Take(_consumer);
                    WarpGroupTurns.Pass(_consumer);
                    missing--;
                }
                Mbarrier.WaitBlock(producer.Full(stage), (kb / stages) & 1);
                Mbarrier.ArriveOncePerWarp(producer.Empty(stage));
            }
            for (; missing > 0; missing--)
            {
                WarpGroupTurns.Take(_consumer);
                WarpGroupTurns.Pass(_consumer);
            }
            if (turns)
                WarpGroupTurns.Finish(_consumer);
        }

        /// <summary>O = O · rescale + the retired P·V of one block, l = l · rescale + its row sums.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void FoldValues(in ResidentFp8PvState resident, float rescaleLo, float rescaleHi, ref HopperRowSoftmax softmax, ref OutputTile output)
        {
            ResidentFp8Pv.Read(_wide, resident, out var low, out var high, out float sumLo, out float sumHi);
            softmax.SumLo = softmax.SumLo * rescaleLo + sumLo;
            softmax.SumHi = softmax.SumHi * rescaleHi + sumHi;
            AddValues(ref output, low, high, rescaleLo, rescaleHi, _wide);
        }
    }
}
