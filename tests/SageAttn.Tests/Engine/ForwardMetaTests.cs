using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>
/// The per-step bookkeeping of one specific mixed batch, against values worked out by hand:
/// block size 4, Hkv 2, D 8; before the step request 3 holds 5 cached tokens (blocks 0, 1) and request 9 holds 3 (block 2).
/// The step is [request 7: new prompt of 3 tokens, request 3: decode, request 9: chunk of 4 after 3 cached].
/// </summary>
public sealed class ForwardMetaTests : IDisposable
{
    private readonly AttentionBackendConfig _config = new(numLayers: 1, numHeads: 4, kvHeads: 2, headDim: 8) { BlockSize = 4, MaxPositions = 32 };
    private readonly PagedKvCache _cache;
    private readonly RotaryTable _rope;

    public ForwardMetaTests()
    {
        _cache = new PagedKvCache(new KvCacheShape(8, 2, 4, 8), numLayers: 1, torch.CPU, ScalarType.Float16);
        _rope = RotaryTable.For(_config);
        _cache.Reserve(3, 5); // blocks 0, 1
        _cache.Reserve(9, 3); // block 2
    }

    private ForwardMeta CreateStep() => ForwardMeta.Create([new(7, 0, 3), new(3, 5, 1), new(9, 3, 4)], _cache, _rope);

    private static int[] Ints(Tensor t) => t.to(ScalarType.Int32).data<int>().ToArray();

    private static long[] Longs(Tensor t) => t.to(ScalarType.Int64).data<long>().ToArray();

    [Fact]
    public void HostLengthsFollowFastDeployNames()
    {
        using var meta = CreateStep();
        Assert.Equal(3, meta.BatchSize);
        Assert.Equal(8, meta.TotalTokens);
        Assert.Equal([3, 0, 4], meta.SeqLensEncoder);
        Assert.Equal([0, 5, 3], meta.SeqLensDecoder);
        Assert.Equal([3, 1, 4], meta.SeqLensThisTime);
        Assert.Equal(4, meta.MaxSeqLenQ);
        Assert.Equal(7, meta.MaxSeqLenK);
    }

    [Fact]
    public void DeviceTensorsMatchHandComputedValues()
    {
        using var meta = CreateStep();
        Assert.Equal(ScalarType.Int32, meta.CuSeqLensQ.dtype);
        Assert.Equal([0, 3, 4, 8], Ints(meta.CuSeqLensQ));
        Assert.Equal([0, 3, 9, 16], Ints(meta.CuSeqLensK));
        Assert.Equal([0, 0, 0, 1, 2, 2, 2, 2], Ints(meta.BatchIdPerToken));
        Assert.Equal([0L, 1, 2, 5, 3, 4, 5, 6], Longs(meta.Positions));
        // Request 7 is new: lowest free block 3. Request 9 grows from 3 to 7 tokens: one more block, 4. Padding −1.
        Assert.Equal(ScalarType.Int32, meta.BlockTables.dtype);
        Assert.Equal(new long[] { 3, 2 }, meta.BlockTables.shape);
        Assert.Equal([3, -1, 0, 1, 2, 4], Ints(meta.BlockTables));
    }

    [Fact]
    public void SlotMappingPointsIntoEachRequestsBlocks()
    {
        using var meta = CreateStep();
        using var metadata = new SdpaAttentionMetadata(meta);
        // slot = block · 4 + offset: request 7 positions 0-2 in block 3; request 3 position 5 = block 1 offset 1;
        // request 9 position 3 = block 2 offset 3, positions 4-6 = block 4 offsets 0-2.
        Assert.Equal([12L, 13, 14, 5, 11, 16, 17, 18], Longs(metadata.SlotMapping));
        // Flat cache row = (block · Hkv + head) · 4 + offset; token 0 (block 3, offset 0) heads 0, 1; token 3 (block 1, offset 1).
        var rows = Longs(metadata.CacheRows);
        Assert.Equal(16, rows.Length);
        Assert.Equal([24L, 28], rows[0..2]);
        Assert.Equal([9L, 13], rows[6..8]);
    }

    [Fact]
    public void SdpaMetadataMasksOnlyThePrefillAfterAPrefix()
    {
        using var meta = CreateStep();
        using var metadata = new SdpaAttentionMetadata(meta);
        Assert.Null(metadata.PrefixMasks[0]); // fresh prompt: torch's top-left causal
        Assert.Null(metadata.PrefixMasks[1]); // decode: every key
        var mask = metadata.PrefixMasks[2]!;
        Assert.Equal(new long[] { 4, 7 }, mask.shape);
        // Query i (position 3 + i) sees keys 0 .. 3 + i.
        Assert.Equal(
            [1, 1, 1, 1, 0, 0, 0,
             1, 1, 1, 1, 1, 0, 0,
             1, 1, 1, 1, 1, 1, 0,
             1, 1, 1, 1, 1, 1, 1], Ints(mask));
        // Keys of all requests, request after request: 3 + 6 + 7 tokens, 2 heads each.
        Assert.Equal(32, metadata.KeyRows.shape[0]);
    }

    [Fact]
    public void SageMetadataSplitsPrefillsFromDecodes()
    {
        using var meta = CreateStep();
        using var metadata = new SageAttentionMetadata(meta);
        Assert.Equal([0, 2], metadata.PrefillBatch);
        Assert.Equal([1], metadata.DecodeBatch);
        Assert.Equal([0L, 1, 2, 4, 5, 6, 7], Longs(metadata.PrefillTokens!));
        Assert.Equal([3L], Longs(metadata.DecodeTokens!));
        Assert.Equal([0, 3, 7], Ints(metadata.PrefillCuSeqLensQ!));
        Assert.Equal([0, 3, 10], Ints(metadata.PrefillCuSeqLensK!));
        Assert.Equal(4, metadata.PrefillMaxSeqLenQ);
        Assert.Equal(7, metadata.PrefillMaxSeqLenK);
        Assert.Equal([6], Ints(metadata.DecodeSeqLens!));
        Assert.Equal(6, metadata.DecodeMaxSeqLen);
        Assert.Equal([0, 1], Ints(metadata.DecodeBlockTables!));
        Assert.False(metadata.AllPrefill);
        Assert.False(metadata.AllDecode);
    }

    [Fact]
    public void InitAttentionMetadataStoresTheBackendsMetadata()
    {
        using var meta = CreateStep();
        using var backend = new SageAttentionBackend(_config);
        backend.InitAttentionMetadata(meta);
        Assert.IsType<SageAttentionMetadata>(meta.AttentionMetadata);
    }

    [Fact]
    public void InvalidStepsThrowNamingTheArgument()
    {
        Assert.Equal("requests", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([], _cache, _rope)).ParamName);
        Assert.Equal("requests", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([new(1, 0, 2), new(1, 0, 2)], _cache, _rope)).ParamName);
        Assert.Equal("requests", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([new(1, 0, 0)], _cache, _rope)).ParamName);
        Assert.Equal("requests", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([new(1, -1, 2)], _cache, _rope)).ParamName);
        // Request 3 holds 5 tokens, not 6; request 4 holds none.
        Assert.Equal("requests", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([new(3, 6, 1)], _cache, _rope)).ParamName);
        Assert.Equal("requests", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([new(4, 2, 1)], _cache, _rope)).ParamName);
        // Past the rotary table's 32 positions.
        Assert.Equal("requests", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([new(5, 0, 33)], _cache, _rope)).ParamName);
        using var otherRope = new RotaryTable(16, 32, 1e4);
        Assert.Equal("rope", Assert.Throws<ArgumentException>(() => ForwardMeta.Create([new(5, 0, 2)], _cache, otherRope)).ParamName);
        Assert.Throws<ArgumentNullException>(() => ForwardMeta.Create(null!, _cache, _rope));
        // Nothing above reserved blocks.
        Assert.Equal(5, _cache.Allocator.FreeBlocks);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _rope.Dispose();
    }
}
