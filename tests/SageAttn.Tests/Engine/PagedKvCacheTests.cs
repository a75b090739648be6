using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>The block allocator (growth, free, reuse, exhaustion) and the paged cache's tensors and writes.</summary>
public sealed class PagedKvCacheTests
{
    [Fact]
    public void RequestsGrowOneBlockPerBlockSizeTokens()
    {
        var allocator = new BlockAllocator(numBlocks: 6, blockSize: 4);
        Assert.Equal([0], allocator.Reserve(1, 3));
        Assert.Equal([0], allocator.Reserve(1, 4)); // still fits block 0
        Assert.Equal([0, 1], allocator.Reserve(1, 5)); // crosses into a second block
        Assert.Equal([2], allocator.Reserve(2, 1));
        Assert.Equal([0, 1, 3], allocator.Reserve(1, 9));
        Assert.Equal([0, 1, 3], allocator.Reserve(1, 2)); // never shrinks
        Assert.Equal(9, allocator.Length(1));
        Assert.Equal(2, allocator.FreeBlocks);
    }

    [Fact]
    public void FreedBlocksAreReused()
    {
        var allocator = new BlockAllocator(numBlocks: 4, blockSize: 2);
        allocator.Reserve(1, 4); // 0, 1
        allocator.Reserve(2, 4); // 2, 3
        Assert.Equal(0, allocator.FreeBlocks);
        allocator.Free(1);
        allocator.Free(1); // twice is harmless
        Assert.False(allocator.Contains(1));
        Assert.Equal(0, allocator.Length(1));
        Assert.Equal([0, 1], allocator.Reserve(3, 3));
        Assert.Throws<ArgumentException>(() => allocator.BlockTable(1));
    }

    [Fact]
    public void ExhaustionThrowsAndAllocatesNothing()
    {
        var allocator = new BlockAllocator(numBlocks: 3, blockSize: 4);
        allocator.Reserve(1, 8);
        var e = Assert.Throws<InvalidOperationException>(() => allocator.Reserve(2, 5));
        Assert.Contains("exhausted", e.Message);
        Assert.Contains("1 of 3", e.Message);
        Assert.False(allocator.Contains(2));
        Assert.Equal(1, allocator.FreeBlocks);
        Assert.False(allocator.CanReserve(2, 5));
        Assert.True(allocator.CanReserve(2, 4));
    }

    [Fact]
    public void AStepThatDoesNotFitReservesNothing()
    {
        using var cache = new PagedKvCache(new KvCacheShape(3, 1, 4, 8), 1, torch.CPU, ScalarType.Float16);
        using var rope = new RotaryTable(8, 64, 1e4);
        // Request 1 alone fits (2 blocks); with request 2 (2 more) the step does not.
        var e = Assert.Throws<InvalidOperationException>(() => ForwardMeta.Create([new(1, 0, 8), new(2, 0, 5)], cache, rope));
        Assert.Contains("exhausted", e.Message);
        Assert.Equal(3, cache.Allocator.FreeBlocks);
    }

    [Fact]
    public void CacheTensorsHaveTheBackendsShapeAndDtype()
    {
        var config = new AttentionBackendConfig(numLayers: 3, numHeads: 8, kvHeads: 2, headDim: 64) { BlockSize = 16, DType = ScalarType.BFloat16 };
        using var backend = new SageAttentionBackend(config);
        using var cache = new PagedKvCache(backend, maxNumBlocks: 5, torch.CPU);
        Assert.Equal(3, cache.NumLayers);
        for (int layer = 0; layer < 3; layer++)
        {
            Assert.Equal(new long[] { 5, 2, 16, 64 }, cache.Key(layer).shape);
            Assert.Equal(new long[] { 5, 2, 16, 64 }, cache.Value(layer).shape);
            Assert.Equal(ScalarType.BFloat16, cache.Key(layer).dtype);
        }

        Assert.Equal("layer", Assert.Throws<ArgumentOutOfRangeException>(() => cache.Key(3)).ParamName);
        Assert.Equal("maxNumBlocks", Assert.Throws<ArgumentException>(() => new PagedKvCache(backend, 0, torch.CPU)).ParamName);
        Assert.Equal("dtype", Assert.Throws<ArgumentException>(() => new PagedKvCache(new KvCacheShape(1, 1, 1, 8), 1, torch.CPU, ScalarType.Float32)).ParamName);
    }

    /// <summary>
    /// Block size 4, Hkv 2. Step 1: request 5 prompt of 6 tokens (blocks 0, 1), request 8 prompt of 3 (block 2).
    /// Step 2: request 8 decodes position 3 (block 2, offset 3); request 5 adds positions 6, 7, 8 (block 1 offsets 2, 3,
    /// then a new block 3 offset 0). Each token's K (rotated) and V must sit exactly at its (block, head, offset).
    /// </summary>
    [Fact]
    public void ForwardMixedWritesEachTokenIntoItsBlockSlot()
    {
        using var generator = new torch.Generator(11);
        var config = new AttentionBackendConfig(numLayers: 2, numHeads: 2, kvHeads: 2, headDim: 16) { BlockSize = 4, MaxPositions = 32 };
        using var backend = new SdpaAttentionBackend(config);
        using var cache = new PagedKvCache(backend, maxNumBlocks: 6, torch.CPU);
        using var rope = RotaryTable.For(config);

        (RequestSlot[] Step, (int Block, int Offset)[] Slots)[] steps =
        [
            ([new(5, 0, 6), new(8, 0, 3)], [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]),
            ([new(8, 3, 1), new(5, 6, 3)], [(2, 3), (1, 2), (1, 3), (3, 0)]),
        ];
        foreach (var (step, slots) in steps)
        {
            using var meta = ForwardMeta.Create(step, cache, rope);
            backend.InitAttentionMetadata(meta);
            var positions = step.SelectMany(r => Enumerable.Range(r.CachedTokens, r.NewTokens)).ToArray();
            for (int layer = 0; layer < 2; layer++)
            {
                using var qkv = EngineScenario.RandomQkv(generator, config, meta.TotalTokens, torch.CPU);
                using var output = backend.ForwardMixed(qkv, layer, meta);
                using var qkv64 = qkv.to(ScalarType.Float64);
                var rows = qkv64.data<double>().ToArray();
                for (int t = 0; t < slots.Length; t++)
                for (int h = 0; h < 2; h++)
                {
                    var (block, offset) = slots[t];
                    using var cachedKey = cache.Key(layer)[block, h, offset].to(ScalarType.Float64);
                    using var cachedValue = cache.Value(layer)[block, h, offset].to(ScalarType.Float64);
                    var key = rows.AsSpan(t * config.QkvWidth + (2 + h) * 16, 16);
                    var value = rows.AsSpan(t * config.QkvWidth + (4 + h) * 16, 16).ToArray();
                    var rotated = EngineReference.Rope(key, positions[t], config.RopeTheta, config.RopeStyle);
                    var k = cachedKey.data<double>().ToArray();
                    for (int c = 0; c < 16; c++)
                        Assert.True(Math.Abs(k[c] - rotated[c]) <= 4e-3 * (1 + Math.Abs(rotated[c])), $"layer {layer} token {t} head {h} channel {c}: {k[c]} vs {rotated[c]}");
                    Assert.Equal(value, cachedValue.data<double>().ToArray());
                }
            }
        }

        // Blocks 4 and 5 were never owned: still zero.
        using var untouched = cache.Key(0).narrow(0, 4, 2).to(ScalarType.Float32).abs().sum();
        Assert.Equal(0.0, untouched.item<float>());
    }
}
