using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

public static partial class HopperAttentionKernel
{
    /// <summary>
    /// Whether the key loop keeps P·V of block j in flight while the softmax of block j + 1 runs (the intra-warpgroup
    /// pipeline): for FP16 values, whose P·V is twice the FP8 tensor time, in blocks that have eight stages (the pipeline
    /// reads two stages at once, P·V of j and Q·Kᵀ of j + 1, so the stage the producer refills must never be one a
    /// lagging warp still reads) and ≥ 160 registers per thread (O, the next S and two P live at once: 150 at three
    /// warpgroups; four, at 128, make ptxas serialize the wgmma for lack of registers, C7512). So: three warpgroups. The
    /// FP8 path's two-level accumulation keeps its fresh P·V accumulator live across the softmax too (209 registers):
    /// built with two warpgroups alone on the SM it was correct but 20–33% slower than two blocks of two unpipelined
    /// warpgroups on the H100 (8 warps per SM instead of 16; docs/performance.md, step 29), so FP8 is not pipelined.
    /// </summary>
    /// <param name="warpGroups">Warpgroups per block.</param>
    /// <param name="valueBytes">1 (FP8 values) or 2 (FP16).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Pipelined(int warpGroups, int valueBytes) =>
        valueBytes == 2 && StagesFor(warpGroups) == 8 && 65536 / (warpGroups * Threads * BlocksPerSm(warpGroups)) >= 160;

    /// <summary>The loop invariants of one warpgroup's walk over the key blocks: tile descriptors, scales, bounds.</summary>
    private readonly struct KeyLoop
    {
        private readonly AttentionParams _p;
        private readonly ArrayView<byte> _tiles;
        private readonly int _tid, _stages, _lead, _visitBlocks, _blockBlocks, _warpFirstRow, _firstMasked;
        private readonly bool _causal, _wide;
        private readonly float _qScale;
        private readonly long _kScaleBase;
        private readonly uint _qDesc, _kDesc0, _qkHigh, _stageStep, _vDesc0, _vHigh, _vStageStep, _vHalfStep;

        public KeyLoop(in AttentionParams p, ArrayView<byte> tiles, int tid, int stages, int lead, int visitBlocks, int blockBlocks,
            bool causal, bool wide, int warpFirstRow, int firstMasked, float qScale, long kScaleBase, uint qDesc, uint kDesc0, uint qkHigh,
            uint stageStep, uint vDesc0, uint vHigh, uint vStageStep, uint vHalfStep)
        {
            _p = p;
            _tiles = tiles;
            _tid = tid;
            _stages = stages;
            _lead = lead;
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
            _vStageStep = vStageStep;
            _vHalfStep = vHalfStep;
        }

        /// <summary>
        /// FP16 values, pipelined: Q·Kᵀ of block j + 1 and P·V of block j are issued together (in that order, two commit
        /// groups); once the scores retire (wait for all but the latest group) the softmax of j + 1 runs while P·V of j is
        /// still in flight, then O is rescaled by j + 1's factor after P·V of j retires. O and both P live in resident
        /// registers (<see cref="ResidentPv"/>): the next P is packed while the current one is still being read. The last
        /// visited block's P·V runs alone; blocks past the warpgroup's last visible key are only waited for and released,
        /// so the producer's ring keeps its pace. Returns O's channel halves.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void RunFp16Pipelined(ArrayView<uint> shared, in Producer producer, ref HopperRowSoftmax softmax,
            out WarpGroupFloatAccumulator outputLow, out WarpGroupFloatAccumulator outputHigh)
        {
            var resident = default(ResidentPvState);
            ResidentPv.Declare(ref resident);
            var scores = default(ScoreTile);
            float kScale = _p.KScale[_kScaleBase];
            if (_visitBlocks > 0)
            {
                Mbarrier.WaitBlock(producer.Full(0), 0);
                IssueScores(out var firstLogits, _qDesc, _kDesc0, _qkHigh, _wide, _tiles);
                if (_tid == 0)
                    producer.LoadBlock(shared, _lead);
                WarpGroupMma.WaitAll();
                softmax.Step(firstLogits, _qScale * kScale, 0, _p, _causal, _warpFirstRow, _firstMasked <= 0, ref scores, partialSums: true);
                ResidentPv.PackNext(HopperTile.AsAccumulator(scores), ref resident);
                ResidentPv.AdvanceP(ref resident);
            }

            int kb = 0;
            for (; kb + 1 < _visitBlocks; kb++)
            {
                int stage = kb & (_stages - 1), next = (kb + 1) & (_stages - 1);
                kScale = _p.KScale[_kScaleBase + (kb + 1) * SageConstants.KScaleSlotsPerBlock];
                Mbarrier.WaitBlock(producer.Full(next), ((kb + 1) / _stages) & 1);
                IssueScores(out var logits, _qDesc, _kDesc0 + (uint)next * _stageStep, _qkHigh, _wide, _tiles);
                IssueResidentValues(stage, ref resident);
                // The copies go out while both products are on the tensor cores (see the unpipelined loop).
                if (_tid == 0)
                    producer.LoadBlock(shared, kb + 1 + _lead);
                WarpGroupMma.WaitAllButLatest();
                softmax.Step(logits, _qScale * kScale, (kb + 1) * KeysPerBlock, _p, _causal, _warpFirstRow, kb + 1 >= _firstMasked, ref scores,
                    partialSums: true);
                ResidentPv.PackNext(HopperTile.AsAccumulator(scores), ref resident);
                WarpGroupMma.WaitAll();
                Mbarrier.ArriveOncePerWarp(producer.Empty(stage));
                ResidentPv.Rescale(softmax.RescaleLo, softmax.RescaleHi, false, ref resident);
                if (_wide)
                    ResidentPv.Rescale(softmax.RescaleLo, softmax.RescaleHi, true, ref resident);
                ResidentPv.AdvanceP(ref resident);
            }

            if (_visitBlocks > 0)
            {
                int stage = kb & (_stages - 1);
                IssueResidentValues(stage, ref resident);
                WarpGroupMma.WaitAll();
                Mbarrier.ArriveOncePerWarp(producer.Empty(stage));
                kb++;
            }

            for (; kb < _blockBlocks; kb++)
            {
                int stage = kb & (_stages - 1);
                if (_tid == 0)
                    producer.LoadBlock(shared, kb + _lead);
                Mbarrier.WaitBlock(producer.Full(stage), (kb / _stages) & 1);
                Mbarrier.ArriveOncePerWarp(producer.Empty(stage));
            }

            ResidentPv.Read(false, resident, out outputLow);
            outputHigh = default;
            if (_wide)
                ResidentPv.Read(true, resident, out outputHigh);
        }

        /// <summary>Issues O += P·V of the block in <paramref name="stage"/> (both channel halves at Dp = 128) and commits.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void IssueResidentValues(int stage, ref ResidentPvState resident)
        {
            uint vDesc = _vDesc0 + (uint)stage * _vStageStep;
            ResidentPv.IssueF16K64(vDesc, _vHigh, false, _tiles, ref resident);
            if (_wide)
                ResidentPv.IssueF16K64(vDesc + _vHalfStep, _vHigh, true, _tiles, ref resident);
            WarpGroupMma.Commit();
        }
    }
}
