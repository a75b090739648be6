using SageAttn.Backend.SequenceParallel;

namespace SageAttn.Tests.SequenceParallel;

/// <summary>The split plan: chunks cover the sequence, the ring visits every source once, causal work is balanced.</summary>
public sealed class SequencePartitionTests
{
    [Theory]
    [InlineData(100, 1, false)]
    [InlineData(101, 3, false)]
    [InlineData(1000, 4, true)]
    [InlineData(9, 4, true)]
    public void ChunksTileTheSequenceAndEachIsOwnedOnce(int tokens, int partitions, bool causal)
    {
        var plan = SequencePartition.Create(tokens, partitions, causal);

        Assert.Equal(causal ? 2 * partitions : partitions, plan.Chunks);
        Assert.Equal(0, plan.ChunkStarts[0]);
        Assert.Equal(tokens, plan.ChunkStarts[plan.Chunks]);
        for (int c = 0; c < plan.Chunks; c++)
            Assert.True(plan.ChunkLength(c) >= tokens / plan.Chunks, $"chunk {c} has {plan.ChunkLength(c)} tokens");
        var owned = Enumerable.Range(0, partitions).SelectMany(plan.OwnedChunks).OrderBy(c => c);
        Assert.Equal(Enumerable.Range(0, plan.Chunks), owned);
    }

    [Fact]
    public void RingVisitsEverySourceExactlyOncePerPartition()
    {
        var plan = SequencePartition.Create(64, 4, causal: false);
        for (int p = 0; p < 4; p++)
        {
            var sources = Enumerable.Range(0, 4).Select(step => plan.KeySourceAt(p, step)).OrderBy(s => s);
            Assert.Equal(Enumerable.Range(0, 4), sources);
            Assert.Equal(p, plan.KeySourceAt(p, 0));
        }
    }

    [Fact]
    public void CausalVisibilityFollowsChunkOrder()
    {
        var plan = SequencePartition.Create(80, 2, causal: true);
        Assert.Equal(ChunkVisibility.Full, plan.Visibility(3, 0));
        Assert.Equal(ChunkVisibility.Diagonal, plan.Visibility(2, 2));
        Assert.Equal(ChunkVisibility.None, plan.Visibility(1, 2));
        var full = SequencePartition.Create(80, 2, causal: false);
        Assert.Equal(ChunkVisibility.Full, full.Visibility(0, 1));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void CausalZigzagBalancesVisiblePairsAcrossPartitions(int partitions)
    {
        int tokens = 4096 * partitions;
        var plan = SequencePartition.Create(tokens, partitions, causal: true);
        // Work of a partition = visible (query, key) pairs of its query chunks over all keys.
        var work = Enumerable.Range(0, partitions).Select(p => plan.OwnedChunks(p).Sum(c =>
        {
            long start = plan.ChunkStarts[c], end = plan.ChunkStarts[c + 1];
            return (end * (end + 1) - start * (start + 1)) / 2;
        })).ToArray();
        double ratio = (double)work.Max() / work.Min();
        Assert.True(ratio < 1.01, $"max/min work {ratio:F3} ({string.Join(", ", work)})");
    }

    [Fact]
    public void TooFewTokensIsAClearError()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SequencePartition.Create(5, 4, causal: true));
        Assert.Equal("tokens", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => SequencePartition.Create(5, 0, causal: false));
    }
}
