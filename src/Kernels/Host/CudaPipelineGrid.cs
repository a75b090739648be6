using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>
/// The sizes and sequence descriptors the driver path's quantizers, LSE correction and attention launches read, for a
/// dense batch or a packed (varlen) one: the two modes differ only in these values, not in the launches.
/// </summary>
/// <param name="QTiles">Grid x of the Q quantizer and the attention kernel.</param>
/// <param name="KBlocks">Grid x of the K and V quantizers.</param>
/// <param name="QRows">Padded quantized Q rows per head.</param>
/// <param name="KRows">Padded quantized K/V rows per kv head.</param>
/// <param name="QRowsPerSequence">Query rows of one batch entry (Nq, or the longest packed sequence): sizes the LSE-correction grid.</param>
/// <param name="KTokens">Key tokens the LSE correction averages over (Nk, or all packed keys).</param>
/// <param name="CuSeqlensQ">cu_seqlens of the queries on the device; a valid empty view in dense mode (never read).</param>
internal readonly record struct CudaPipelineGrid(int Batch, int HeadsQ, int HeadsKv, int QTiles, int KBlocks, int QRows, int KRows,
    int QRowsPerSequence, int KTokens, int Chunks, int PaddedHeadDim,
    PackedSequences QSequences, DeviceView CuSeqlensQ, PackedSequences KSequences, DeviceView CuSeqlensK)
{
    /// <summary>A dense batch; <paramref name="noSequences"/> is any valid device address passed for the unread cu_seqlens.</summary>
    public static CudaPipelineGrid Dense(AttentionShape shape, DeviceView noSequences) =>
        new(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.QTiles, shape.KBlocks, shape.NqPad, shape.NkPad, shape.Nq, shape.Nk,
            shape.KStatsChunks, shape.PaddedHeadDim, default, noSequences, default, noSequences);

    /// <summary>A packed batch described by device cu_seqlens.</summary>
    public static CudaPipelineGrid Packed(VarlenShape shape, DeviceView cuSeqlensQ, DeviceView cuSeqlensK) =>
        new(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.QTiles, shape.KBlocks, shape.QRows, shape.KRows, shape.MaxQ, shape.TotalK,
            shape.KStatsChunks, shape.PaddedHeadDim,
            new PackedSequences { Packed = 1, TotalTokens = shape.TotalQ, MaxTokens = shape.MaxQ }, cuSeqlensQ,
            new PackedSequences { Packed = 1, TotalTokens = shape.TotalK, MaxTokens = shape.MaxK }, cuSeqlensK);
}
