namespace SageAttn.Backend.Engine;

/// <summary>
/// The shape of one layer's paged key cache and value cache: [MaxNumBlocks, KvHeads, BlockSize, HeadDim] each
/// (FastDeploy's layout: a block holds BlockSize consecutive tokens of one request, head-major inside the block).
/// </summary>
/// <param name="MaxNumBlocks">Blocks in the pool, shared by all requests.</param>
/// <param name="KvHeads">Key/value heads (Hkv).</param>
/// <param name="BlockSize">Tokens per block.</param>
/// <param name="HeadDim">Channels per head (D).</param>
public sealed record KvCacheShape(int MaxNumBlocks, int KvHeads, int BlockSize, int HeadDim)
{
    /// <summary>The key cache's shape, [MaxNumBlocks, KvHeads, BlockSize, HeadDim].</summary>
    public long[] KeyShape => [MaxNumBlocks, KvHeads, BlockSize, HeadDim];

    /// <summary>The value cache's shape, equal to <see cref="KeyShape"/>.</summary>
    public long[] ValueShape => [MaxNumBlocks, KvHeads, BlockSize, HeadDim];

    /// <summary>Token slots in the pool (MaxNumBlocks · BlockSize).</summary>
    public long TokenSlots => (long)MaxNumBlocks * BlockSize;
}
