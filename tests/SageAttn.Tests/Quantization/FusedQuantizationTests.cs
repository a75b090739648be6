using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;
using SageAttn.Quantization.Reference;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Quantization;

/// <summary>
/// The fused quantization path (K/V statistics in one launch, Q/K/V tiles in one grid) on the CPU accelerator:
/// bit for bit the plain C# reference, across dtypes, smoothing, odd lengths, GQA, partial channel slices,
/// the element-by-element read path and K/V strips of several blocks with a short last strip.
/// </summary>
public sealed class FusedQuantizationTests(CpuAcceleratorFixture fixture) : IClassFixture<CpuAcceleratorFixture>
{
    public static TheoryData<int, int, int, int, int, TensorElementType, bool, bool, int, bool, int> Cases => new()
    {
        // batch, headsQ, headsKv, tokens, headDim, type, smoothK, smoothV, variant, nhd (element reads), strip tiles (0 = default)
        { 1, 2, 1, 130, 64, TensorElementType.Float16, true, false, 0, false, 2 },
        { 1, 2, 2, 77, 128, TensorElementType.BFloat16, false, true, 1, true, 1 },
        { 1, 1, 1, 300, 128, TensorElementType.Float16, true, true, 2, false, 3 },
        { 1, 4, 2, 65, 100, TensorElementType.BFloat16, true, true, 0, false, 0 },
        // Statistics blocks spanning heads and batches: 3 x 3 heads of 2 chunks, 8 chunk slots per block at hd 64 (K only).
        { 3, 3, 3, 300, 64, TensorElementType.Float16, true, false, 2, false, 0 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedPathEqualsReferenceExactly(int batch, int headsQ, int headsKv, int tokens, int headDim, TensorElementType type,
        bool smoothK, bool smoothV, int variant, bool nhd, int stripTiles) =>
        AssertEqualsReference(QuantizationPath.Fused, batch, headsQ, headsKv, tokens, headDim, type, smoothK, smoothV, variant, nhd, stripTiles);

    /// <summary>
    /// The one-launch kernel (statistics and quantization items in one launch, ordered by tickets; quantization blocks wait
    /// for their head's statistics, also on the CPU accelerator). Adds heads of three chunks with a one-tile last chunk (600 tokens) and a case without K smoothing (K's
    /// statistics are then not computed at all). At hd 64 a statistics item sums two chunks: 300 tokens pair a full chunk
    /// with a short one, 530 end on an unpaired chunk, 1100 have two pairs and an unpaired 76-token chunk.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    [InlineData(2, 2, 1, 600, 128, TensorElementType.Float16, true, true, 2, false, 0)]
    [InlineData(1, 2, 1, 1100, 64, TensorElementType.Float16, true, true, 2, false, 0)]
    [InlineData(1, 2, 2, 530, 64, TensorElementType.BFloat16, false, false, 0, false, 0)]
    public void OneLaunchPathEqualsReferenceExactly(int batch, int headsQ, int headsKv, int tokens, int headDim, TensorElementType type,
        bool smoothK, bool smoothV, int variant, bool nhd, int stripTiles) =>
        AssertEqualsReference(QuantizationPath.OneLaunch, batch, headsQ, headsKv, tokens, headDim, type, smoothK, smoothV, variant, nhd, stripTiles);

    private void AssertEqualsReference(QuantizationPath path, int batch, int headsQ, int headsKv, int tokens, int headDim, TensorElementType type,
        bool smoothK, bool smoothV, int variant, bool nhd, int stripTiles)
    {
        var runner = fixture.Require();
        var random = new Random(tokens * 17 + headDim + variant);
        var q = TestData.Randn(random, batch, headsQ, tokens + 3, headDim, type, nhd);
        var k = TestData.Randn(random, batch, headsKv, tokens, headDim, type, nhd, channelOffset: 8f);
        var v = TestData.Randn(random, batch, headsKv, tokens, headDim, type, nhd, scale: 2f, channelOffset: 1f);
        var options = new SageAttentionOptions
        {
            Variant = (AttentionVariant)variant, Granularity = QuantGranularity.PerThread, SmoothK = smoothK, SmoothV = smoothV,
        };
        float smScale = 1f / MathF.Sqrt(headDim);

        var (qb, qv) = fixture.Upload(q, aligned8: !nhd);
        var (kb, kv) = fixture.Upload(k, aligned8: !nhd);
        var (vb, vv) = fixture.Upload(v, aligned8: !nhd);
        runner.QuantizationPath = path;
        runner.StripTiles = stripTiles == 0 ? null : stripTiles;
        try
        {
            using (qb) using (kb) using (vb)
            using (var quantized = runner.Quantize(qv, kv, vv, type, smScale, options))
            {
                fixture.Accelerator!.Synchronize();
                int dp = SageConstants.PaddedHeadDim(headDim);
                var kStats = QuantizationReference.ChannelStats(k, dp);
                // Without K smoothing nothing reads K's statistics; the one-launch kernel does not compute them.
                if (smoothK || path == QuantizationPath.Fused)
                    Assert.Equal(kStats, quantized.KStats.GetAsArray1D());
                if (FusedQuantizationPlan.ReadsVStats(options, type))
                    Assert.Equal(QuantizationReference.ChannelStats(v, dp), quantized.VStats.GetAsArray1D());

                var (qValues, qScales) = QuantizationReference.QuantizeInt8(q, false, options.Granularity, null, smScale * SageConstants.Log2E);
                Assert.Equal(qValues, quantized.Q.GetAsArray1D());
                Assert.Equal(qScales, quantized.QScale.GetAsArray1D());

                var kMeans = smoothK ? QuantizationReference.ChannelMeans(k, kStats, dp) : null;
                var (kValues, kScales) = QuantizationReference.QuantizeInt8(k, true, options.Granularity, kMeans, 1f);
                Assert.Equal(kValues, quantized.K.GetAsArray1D());
                Assert.Equal(kScales, quantized.KScale.GetAsArray1D());

                var (vWords, vScales, vMeans) = QuantizationReference.QuantizeV(v, options.VFormat, smoothV);
                Assert.Equal(vWords, quantized.V.GetAsArray1D());
                Assert.Equal(vScales, quantized.VScale.GetAsArray1D());
                Assert.Equal(vMeans, quantized.VMean.GetAsArray1D());

                // The comparison is not vacuous: the tiles hold full-range values, smoothing changed K where asked.
                Assert.Contains(qValues, x => Math.Abs((int)x) == 127);
                Assert.Contains(vWords, w => w != 0);
                if (smoothK) Assert.Contains(kMeans!, m => Math.Abs(m) > 1f);
            }
        }
        finally
        {
            runner.StripTiles = null;
            runner.QuantizationPath = QuantizationPath.Fused;
        }
    }

    /// <summary>
    /// FP16 V: fp16 inputs without smoothing skip V's statistics (scale 1 for every channel: nothing in fp16 exceeds its
    /// range), bf16 inputs past fp16's range still read them and scale by powers of two; both equal the reference.
    /// </summary>
    [Theory]
    [InlineData(TensorElementType.Float16, false, 2f, false)]
    [InlineData(TensorElementType.Float16, false, 12000f, false)]
    [InlineData(TensorElementType.BFloat16, false, 40000f, true)]
    [InlineData(TensorElementType.Float16, true, 2f, true)]
    public void Fp16ValuesReadVStatisticsOnlyWhereTheyMatter(TensorElementType type, bool smoothV, float vScale, bool expectStats)
    {
        var runner = fixture.Require();
        var random = new Random((int)vScale + (smoothV ? 1 : 0));
        var q = TestData.Randn(random, 1, 2, 130, 64, type);
        var k = TestData.Randn(random, 1, 1, 130, 64, type, channelOffset: 8f);
        var v = TestData.Randn(random, 1, 1, 130, 64, type, scale: vScale, channelOffset: 1f);
        var options = new SageAttentionOptions { Variant = AttentionVariant.HopperQkInt8PvFp16, SmoothV = smoothV };
        Assert.Equal(expectStats, FusedQuantizationPlan.ReadsVStats(options, type));

        var (qb, qv) = fixture.Upload(q);
        var (kb, kv) = fixture.Upload(k);
        var (vb, vv) = fixture.Upload(v);
        runner.QuantizationPath = QuantizationPath.Fused;
        using (qb) using (kb) using (vb)
        using (var quantized = runner.Quantize(qv, kv, vv, type, 0.125f, options))
        {
            fixture.Accelerator!.Synchronize();
            Assert.Equal(QuantizationReference.ChannelStats(k, 64), quantized.KStats.GetAsArray1D());
            var (vWords, vScales, vMeans) = QuantizationReference.QuantizeV(v, options.VFormat, smoothV);
            Assert.Equal(vWords, quantized.V.GetAsArray1D());
            Assert.Equal(vScales, quantized.VScale.GetAsArray1D());
            Assert.Equal(vMeans, quantized.VMean.GetAsArray1D());
            // bf16 past fp16's range: some channel scaled down (the statistics were needed); fp16: all scales are 1, also
            // where values pass 32768 (the 12000 · randn case).
            if (type == TensorElementType.BFloat16)
                Assert.Contains(vScales, s => s > 1f);
            else if (!smoothV)
                Assert.All(vScales, s => Assert.Equal(1f, s));
        }
    }

    [Fact]
    public void AllQuantizationPathsWriteIdenticalBuffers()
    {
        var runner = fixture.Require();
        var random = new Random(5);
        var type = TensorElementType.Float16;
        var q = TestData.Randn(random, 1, 2, 70, 64, type);
        var k = TestData.Randn(random, 1, 1, 70, 64, type, channelOffset: 8f);
        var v = TestData.Randn(random, 1, 1, 70, 64, type);
        var options = new SageAttentionOptions { Variant = AttentionVariant.QkInt8PvFp8Fp16Accum, SmoothV = true, Granularity = QuantGranularity.PerWarp };
        var (qb, qv) = fixture.Upload(q);
        var (kb, kv) = fixture.Upload(k);
        var (vb, vv) = fixture.Upload(v);
        using (qb) using (kb) using (vb)
        {
            runner.QuantizationPath = QuantizationPath.Separate;
            using var separate = runner.Quantize(qv, kv, vv, type, 0.125f, options);
            runner.QuantizationPath = QuantizationPath.Fused;
            using var fused = runner.Quantize(qv, kv, vv, type, 0.125f, options);
            runner.QuantizationPath = QuantizationPath.OneLaunch;
            using var oneLaunch = runner.Quantize(qv, kv, vv, type, 0.125f, options);
            runner.QuantizationPath = QuantizationPath.Fused;
            fixture.Accelerator!.Synchronize();
            Assert.Equal(fused.K.GetAsArray1D(), oneLaunch.K.GetAsArray1D());
            Assert.Equal(fused.V.GetAsArray1D(), oneLaunch.V.GetAsArray1D());
            Assert.Equal(fused.VScale.GetAsArray1D(), oneLaunch.VScale.GetAsArray1D());
            Assert.Equal(fused.KStats.GetAsArray1D(), oneLaunch.KStats.GetAsArray1D());
            Assert.Equal(fused.VStats.GetAsArray1D(), oneLaunch.VStats.GetAsArray1D());
            Assert.Equal(separate.Q.GetAsArray1D(), fused.Q.GetAsArray1D());
            Assert.Equal(separate.QScale.GetAsArray1D(), fused.QScale.GetAsArray1D());
            Assert.Equal(separate.K.GetAsArray1D(), fused.K.GetAsArray1D());
            Assert.Equal(separate.KScale.GetAsArray1D(), fused.KScale.GetAsArray1D());
            Assert.Equal(separate.V.GetAsArray1D(), fused.V.GetAsArray1D());
            Assert.Equal(separate.VScale.GetAsArray1D(), fused.VScale.GetAsArray1D());
            Assert.Equal(separate.VMean.GetAsArray1D(), fused.VMean.GetAsArray1D());
            Assert.Equal(separate.KStats.GetAsArray1D(), fused.KStats.GetAsArray1D());
            Assert.Equal(separate.VStats.GetAsArray1D(), fused.VStats.GetAsArray1D());
        }
    }

    [Fact]
    public void OneLaunchTakesHeadsOfAtMostSixteenChunksAndLagsQuantizationByAboutFourThousandItems()
    {
        // 4096 tokens: 16 chunks of 256 and 64 tiles per head: a step of one tensor is 16 + 64 items.
        var shape = new AttentionShape(2, 16, 8, 4096, 4096, 128);
        Assert.True(FusedQuantizationPlan.TakesOneLaunch(shape));
        long step = 16 + 64;
        Assert.Equal(step, FusedQuantizationPlan.OneLaunchStepItems(shape));
        int lag = QkvQuantizeOneLaunchKernel.LagSteps(step, 16);
        Assert.Equal(16, lag);
        // The lag is capped at the heads (16 here); with many heads it spans ~4096 items.
        Assert.Equal(52, QkvQuantizeOneLaunchKernel.LagSteps(step, 1000));
        Assert.True(52 * step >= QkvQuantizeOneLaunchKernel.LagItems);
        // K's and V's steps for the 16 K/V heads plus the lag's (their absent heads' items are empty), then 32 x 64 Q tiles.
        Assert.Equal(2 * (16 + lag) * step + 32 * 64, FusedQuantizationPlan.OneLaunchItems(shape));
        // 4097 tokens: 17 chunks, past the limit.
        Assert.False(FusedQuantizationPlan.TakesOneLaunch(new AttentionShape(1, 1, 1, 4097, 4097, 128)));
        // Coordination: the ticket, an arrival counter per K and per V head, then K's means (16 heads x 128 channels).
        Assert.Equal(1 + 2 * 16 + 16 * 128, QuantizedLayout.For(shape, new SageAttentionOptions()).Coordination);
    }

    [Fact]
    public void PlanGroupsLongSequencesIntoStripsAndCountsEveryTile()
    {
        // 32K tokens: 128 statistics chunks of 256 -> 16 blocks per strip, 512 blocks -> 32 strips per head;
        // blocks = 2 (K, V) x 32 heads x 32 strips + 32 heads x 512 Q tiles = 2048 + 16384.
        var longPlan = FusedQuantizationPlan.For(new AttentionShape(1, 32, 32, 32768, 32768, 128));
        Assert.Equal(16, longPlan.StripTiles);
        Assert.Equal(32, longPlan.Strips);
        Assert.Equal(18432, longPlan.QuantizeItems);
        // 4 chunks per statistics block at hd 128 (K and V of each): 32 heads x 128 chunks take 1024 blocks.
        Assert.Equal(1024, longPlan.StatsBlocks);
        // hd 64 at 1K: 4 chunks per head, 8 per block: a block covers two heads (no idle threads), 16 x 64 x 4 / 8 blocks.
        Assert.Equal(512, FusedQuantizationPlan.For(new AttentionShape(16, 64, 64, 1024, 1024, 64)).StatsBlocks);

        // 1K tokens: one block per strip; 130 tokens with 3-block strips: 3 blocks -> 1 strip.
        Assert.Equal(1, FusedQuantizationPlan.For(new AttentionShape(16, 32, 32, 1024, 1024, 128)).StripTiles);
        var shortPlan = FusedQuantizationPlan.For(new AttentionShape(1, 2, 1, 130, 130, 64), stripTiles: 2);
        Assert.Equal(2, shortPlan.Strips);
        Assert.Equal(2 * 1 * 2 + 2 * 3, shortPlan.QuantizeItems);
        Assert.Throws<ArgumentOutOfRangeException>(() => FusedQuantizationPlan.For(new AttentionShape(1, 1, 1, 64, 64, 64), stripTiles: 0));
        // K only (FP16 V from fp16 inputs): 8 chunks per block at hd 128, so half the blocks.
        Assert.Equal(512, FusedQuantizationPlan.For(new AttentionShape(1, 32, 32, 32768, 32768, 128), vStats: false).StatsBlocks);
    }
}
