using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Intrinsics;

namespace SageAttn.Tests.Attention;

/// <summary>The wgmma kernel's launch arithmetic: warpgroups per block, shared memory, the variant facts it keys on.</summary>
public sealed class HopperLaunchShapeTests
{
    /// <summary>The H100's per-block limit of dynamic shared memory (227 KB) and per-SM total (228 KB, 1 KB reserved per block).</summary>
    private const int MaxBlockBytes = 227 * 1024, SmBytes = 228 * 1024, ReservedPerBlock = 1024;

    [Theory]
    [InlineData(64, 1)]
    [InlineData(64, 2)]
    [InlineData(128, 1)]
    [InlineData(128, 2)]
    public void EveryBlockShapeFitsTheSm(int paddedHeadDim, int valueBytes)
    {
        for (int groups = 1; groups <= HopperAttentionKernel.MaxWarpGroups; groups++)
        {
            int bytes = HopperAttentionKernel.SharedBytes(paddedHeadDim, groups, valueBytes);
            int blocks = HopperAttentionKernel.BlocksPerSm(groups);
            Assert.True(bytes <= MaxBlockBytes, $"Dp {paddedHeadDim}, {valueBytes}-byte V, W = {groups}: {bytes} bytes per block");
            Assert.True(blocks * (bytes + ReservedPerBlock) <= SmBytes,
                $"Dp {paddedHeadDim}, {valueBytes}-byte V, W = {groups}: {blocks} blocks of {bytes} bytes do not share an SM");
        }
    }

    [Theory]
    [InlineData(64)]
    [InlineData(128)]
    public void WarpSpecializedBlockFillsOneSm(int paddedHeadDim)
    {
        int bytes = HopperAttentionKernel.SpecializedSharedBytes(paddedHeadDim);
        Assert.True(bytes + ReservedPerBlock <= SmBytes, $"Dp {paddedHeadDim}: {bytes} bytes");
        // setmaxnreg budgets: multiples of 8 in 24..256, and the three warpgroups together within what the block was launched
        // with (65536 / 384 threads, rounded down to 8: 168 per thread), or the consumers' increase would wait forever.
        foreach (int budget in new[] { RegisterBudget.Producer, RegisterBudget.Consumer })
            Assert.True(budget % 8 == 0 && budget is >= 24 and <= 256, $"budget {budget}");
        int launched = 65536 / HopperAttentionKernel.SpecializedThreads / 8 * 8;
        Assert.True(RegisterBudget.Producer + HopperAttentionKernel.SpecializedConsumers * RegisterBudget.Consumer <= (1 + HopperAttentionKernel.SpecializedConsumers) * launched);
        Assert.Equal(3 * HopperAttentionKernel.Threads, HopperAttentionKernel.SpecializedThreads);
    }

    [Fact]
    public void FirstMaskedBlockIsWhereTheBoundsCheckFirstHoldsAndItHoldsAfter()
    {
        // The kernel masks block j when j >= FirstMaskedBlock; the definition is block j's last key 64j + 63 at or past
        // Nk, or (causal) past the warp's first row + offset. Negative offsets (more queries than keys) included.
        foreach (bool causal in new[] { false, true })
            for (int nk = 1; nk <= 300; nk += 7)
                for (int offset = -200; offset <= 200; offset += 13)
                    for (int warpFirstRow = 0; warpFirstRow <= 256; warpFirstRow += 16)
                    {
                        int first = Tile.FirstMaskedBlock(warpFirstRow, nk, causal, offset);
                        for (int j = 0; j < (nk + 63) / 64 + 2; j++)
                        {
                            int lastKey = 64 * j + 63;
                            bool needed = lastKey >= nk || (causal && lastKey > warpFirstRow + offset);
                            Assert.True(needed == (j >= first),
                                $"nk {nk}, offset {offset}, row {warpFirstRow}, causal {causal}: block {j}, first masked {first}");
                        }
                    }
    }

    [Fact]
    public void Fp16ValuesDoubleTheValueStages()
    {
        // Q tiles and K stages are unchanged; each Vᵀ stage doubles (64 keys × Dp × 2 bytes instead of × 1), and FP16 P
        // needs no e4m3 ones tile for its row sums.
        int stages = HopperAttentionKernel.StagesFor(2);
        Assert.Equal(stages * 64 * 128 - WarpGroupMma.OnesTileBytes,
            HopperAttentionKernel.SharedBytes(128, 2, 2) - HopperAttentionKernel.SharedBytes(128, 2, 1));
    }

    [Theory]
    [InlineData(128, 1, 40, 2)]
    [InlineData(64, 1, 40, 2)]
    [InlineData(64, 2, 40, 2)]
    [InlineData(128, 2, 40, 3)]
    [InlineData(128, 2, 2, 2)]
    [InlineData(128, 2, 1, 1)]
    public void AutomaticWarpGroups(int paddedHeadDim, int valueBytes, int qTiles, int expected) =>
        Assert.Equal(expected, HopperAttentionKernel.WarpGroupsFor(qTiles, 0, paddedHeadDim, valueBytes));

    [Fact]
    public void ExplicitWarpGroupsAreKeptOrRejected()
    {
        Assert.Equal(4, HopperAttentionKernel.WarpGroupsFor(40, 4, 128, 2));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => HopperAttentionKernel.WarpGroupsFor(40, 5, 128, 1));
        Assert.Equal("requested", e.ParamName);
    }

    [Fact]
    public void VariantFacts()
    {
        Assert.Equal(2, HopperAttentionKernel.ValueBytes(AttentionVariant.HopperQkInt8PvFp16));
        Assert.Equal(1, HopperAttentionKernel.ValueBytes(AttentionVariant.HopperQkInt8PvFp8));
        foreach (var v in Enum.GetValues<AttentionVariant>())
        {
            Assert.Equal(v is AttentionVariant.HopperQkInt8PvFp8 or AttentionVariant.HopperQkInt8PvFp16, v.IsHopper());
            Assert.Equal(v is AttentionVariant.QkInt8PvFp16 or AttentionVariant.HopperQkInt8PvFp16, v.HasFp16Values());
            Assert.Equal(v.HasFp16Values(), new SageAttn.Kernels.Host.SageAttentionOptions { Variant = v }.VFormat == SageAttn.Quantization.VFormat.Fp16);
        }
    }

    [Theory]
    [InlineData(1, 2, false)]  // two blocks per SM: a ring of 4 stages
    [InlineData(2, 2, false)]
    [InlineData(3, 2, true)]   // 8 stages, 170 registers per thread
    [InlineData(4, 2, false)]  // 128 registers: ptxas serialized the pipelined wgmma for lack of them (C7512)
    [InlineData(3, 1, false)]  // FP8 values: two-level accumulation, not pipelined
    public void OnlyFp16ValuesAtThreeWarpGroupsArePipelined(int warpGroups, int valueBytes, bool expected) =>
        Assert.Equal(expected, HopperAttentionKernel.Pipelined(warpGroups, valueBytes));
}
