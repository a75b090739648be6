using ILGPU;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// Everything <see cref="PagedDecodeKernel"/> reads and writes: one new query token per request, its keys and
/// values in a paged cache found through a block table.
/// </summary>
/// <remarks>
/// Cache layout (FastDeploy's): [NumBlocks, HeadsKv, BlockSize, HeadDim], contiguous, 16-byte aligned. Key j of
/// request b lives in physical block <c>BlockTables[b · BlockTableStride + j / BlockSize]</c>, row j % BlockSize.
/// All index values are trusted but clamped, so a bad entry reads a wrong block, never outside the cache.
/// </remarks>
public struct PagedDecodeParams
{
    /// <summary>Queries [B, Hq, D] (fp16/bf16 bits), addressed by <see cref="QStrideBatch"/>, <see cref="QStrideHead"/>; channels contiguous.</summary>
    public ArrayView<ushort> Q;
    /// <summary>Key cache bits [NumBlocks, HeadsKv, BlockSize, HeadDim].</summary>
    public ArrayView<ushort> KCache;
    /// <summary>Value cache bits, same layout as <see cref="KCache"/>.</summary>
    public ArrayView<ushort> VCache;
    /// <summary>Physical block of each logical block, [B, BlockTableStride] int32.</summary>
    public ArrayView<int> BlockTables;
    /// <summary>Valid cached tokens per request [B] int32 (the new token included).</summary>
    public ArrayView<int> SeqLens;
    /// <summary>Direct path (<see cref="Splits"/> = 1): output bits [B, Hq, D] by <see cref="OStrideBatch"/>, <see cref="OStrideHead"/>.</summary>
    public ArrayView<ushort> O;
    /// <summary>Direct path: natural-log LSE [B, Hq], written when <see cref="WriteLse"/> is 1.</summary>
    public ArrayView<float> Lse;
    /// <summary>Split path: per-split normalized outputs [Splits, B, Hq, D] in FP32.</summary>
    public ArrayView<float> PartialO;
    /// <summary>Split path: per-split natural-log LSE [Splits, B, Hq] (−∞ for a split with no keys).</summary>
    public ArrayView<float> PartialLse;
    public long QStrideBatch, QStrideHead, OStrideBatch, OStrideHead;
    public int Batch, HeadsQ, HeadsKv, NumBlocks, BlockSize, BlockTableStride;
    /// <summary>Keys beyond this are ignored (seq_lens are clamped to it): the host-known maximum.</summary>
    public int MaxSeqLen;
    /// <summary>Keys per split, a multiple of <see cref="PagedDecodeKernel.KeysPerStep"/>.</summary>
    public int KeysPerSplit;
    /// <summary>Number of splits (grid x); 1 writes O directly, more write the partials.</summary>
    public int Splits;
    /// <summary>sm_scale · log2(e): the softmax runs in exp2.</summary>
    public float ScaleLog2;
    public int WriteLse;
}
