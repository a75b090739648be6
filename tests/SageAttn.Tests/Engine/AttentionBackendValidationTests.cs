using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>Bad configs and bad ForwardMixed arguments fail with exceptions that name the argument, for both backends.</summary>
public sealed class AttentionBackendValidationTests
{
    private static readonly AttentionBackendConfig Config = new(numLayers: 2, numHeads: 4, kvHeads: 2, headDim: 8) { BlockSize = 4, MaxPositions = 16 };

    public static TheoryData<string> Backends => new() { SdpaAttentionBackend.BackendName, SageAttentionBackend.BackendName };

    [Fact]
    public void KvCacheShapeIsBlocksHeadsBlockSizeHeadDim()
    {
        var config = new AttentionBackendConfig { NumLayers = 18, NumHeads = 16, KvHeads = 2, HeadDim = 128 };
        using var backend = new SageAttentionBackend(config);
        var shape = backend.GetKvCacheShape(1000);
        Assert.Equal(new long[] { 1000, 2, 64, 128 }, shape.KeyShape);
        Assert.Equal(new long[] { 1000, 2, 64, 128 }, shape.ValueShape);
        Assert.Equal(64_000, shape.TokenSlots);
        using var sdpa = new SdpaAttentionBackend(config with { BlockSize = 16 });
        Assert.Equal(new long[] { 7, 2, 16, 128 }, sdpa.GetKvCacheShape(7).KeyShape);
        Assert.Equal("maxNumBlocks", Assert.Throws<ArgumentException>(() => backend.GetKvCacheShape(0)).ParamName);
    }

    [Fact]
    public void InvalidConfigsNameTheMember()
    {
        Assert.Equal("KvHeads", Assert.Throws<ArgumentException>(() => new SdpaAttentionBackend(Config with { NumHeads = 6, KvHeads = 4 })).ParamName);
        Assert.Equal("HeadDim", Assert.Throws<ArgumentException>(() => new SageAttentionBackend(Config with { HeadDim = 9 })).ParamName);
        Assert.Equal("HeadDim", Assert.Throws<ArgumentException>(() => new SageAttentionBackend(Config with { HeadDim = 256 })).ParamName);
        Assert.Equal("BlockSize", Assert.Throws<ArgumentException>(() => new SageAttentionBackend(Config with { BlockSize = 0 })).ParamName);
        Assert.Equal("NumLayers", Assert.Throws<ArgumentException>(() => new SageAttentionBackend(Config with { NumLayers = 0 })).ParamName);
        Assert.Equal("DType", Assert.Throws<ArgumentException>(() => new SageAttentionBackend(Config with { DType = ScalarType.Float32 })).ParamName);
        Assert.Equal("SmScale", Assert.Throws<ArgumentException>(() => new SageAttentionBackend(Config with { SmScale = -1 })).ParamName);
        Assert.Equal("RopeTheta", Assert.Throws<ArgumentException>(() => new SageAttentionBackend(Config with { RopeTheta = 0 })).ParamName);
        Assert.Throws<ArgumentNullException>(() => new SageAttentionBackend(null!));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void BadForwardArgumentsNameTheArgument(string name)
    {
        using var backend = AttentionBackendRegistry.Create(name, Config);
        using var cache = new PagedKvCache(backend, 4, torch.CPU);
        using var rope = RotaryTable.For(Config);
        using var meta = ForwardMeta.Create([new(1, 0, 3)], cache, rope);

        using var qkv = torch.zeros(3, Config.QkvWidth, ScalarType.Float16);
        Assert.Throws<InvalidOperationException>(() => backend.ForwardMixed(qkv, 0, meta)); // no InitAttentionMetadata
        backend.InitAttentionMetadata(meta);

        using var narrow = torch.zeros(3, Config.QkvWidth - 8, ScalarType.Float16);
        using var fewerTokens = torch.zeros(2, Config.QkvWidth, ScalarType.Float16);
        using var rank3 = torch.zeros(3, 8, Config.QkvWidth / 8, ScalarType.Float16);
        using var float32 = torch.zeros(3, Config.QkvWidth, ScalarType.Float32);
        foreach (var bad in new[] { narrow, fewerTokens, rank3, float32 })
            Assert.Equal("qkv", Assert.Throws<ArgumentException>(() => backend.ForwardMixed(bad, 0, meta)).ParamName);
        Assert.Equal("layer", Assert.Throws<ArgumentOutOfRangeException>(() => backend.ForwardMixed(qkv, -1, meta)).ParamName);
        Assert.Equal("layer", Assert.Throws<ArgumentOutOfRangeException>(() => backend.ForwardMixed(qkv, 2, meta)).ParamName);
        Assert.Throws<ArgumentNullException>(() => backend.ForwardMixed(null!, 0, meta));
        Assert.Throws<ArgumentNullException>(() => backend.ForwardMixed(qkv, 0, null!));
    }

    [Fact]
    public void MetadataOfAnotherBackendIsRefused()
    {
        using var sdpa = new SdpaAttentionBackend(Config);
        using var sage = new SageAttentionBackend(Config);
        using var cache = new PagedKvCache(sdpa, 4, torch.CPU);
        using var rope = RotaryTable.For(Config);
        using var meta = ForwardMeta.Create([new(1, 0, 2)], cache, rope);
        sdpa.InitAttentionMetadata(meta);
        using var qkv = torch.zeros(2, Config.QkvWidth, ScalarType.Float16);
        Assert.Throws<InvalidOperationException>(() => sage.ForwardMixed(qkv, 0, meta));
    }

    [Fact]
    public void AStepOnACacheOfAnotherShapeIsRefused()
    {
        using var backend = new SdpaAttentionBackend(Config);
        using var cache = new PagedKvCache(new KvCacheShape(4, 2, 8, 8), 2, torch.CPU, ScalarType.Float16); // block size 8, not 4
        using var rope = RotaryTable.For(Config);
        using var meta = ForwardMeta.Create([new(1, 0, 2)], cache, rope);
        Assert.Equal("meta", Assert.Throws<ArgumentException>(() => backend.InitAttentionMetadata(meta)).ParamName);
    }
}
