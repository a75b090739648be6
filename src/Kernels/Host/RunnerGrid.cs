using ILGPU;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>
/// The sizes and sequence descriptors the ILGPU runner's separate quantizers, LSE correction and attention launch read,
/// for a dense batch or a packed (varlen) one: the two modes differ only in these values (the driver path's twin is
/// <see cref="CudaPipelineGrid"/>).
/// </summary>
/// <param name="Nq">Query tokens per batch entry (dense) or in all (packed): the kernels' Nq.</param>
/// <param name="Nk">Key tokens per batch entry (dense) or in all (packed): the kernels' Nk.</param>
/// <param name="QTiles">Grid x of the Q quantizer and the attention kernel.</param>
/// <param name="KBlocks">Grid x of the K and V quantizers.</param>
/// <param name="QRows">Padded quantized Q rows per head.</param>
/// <param name="KRows">Padded quantized K/V rows per kv head.</param>
/// <param name="QRowsPerSequence">Query rows of one batch entry (Nq, or the longest packed sequence): sizes the LSE-correction grid.</param>
internal readonly record struct RunnerGrid(int Batch, int HeadsQ, int HeadsKv, int HeadDim, int Nq, int Nk, int QTiles, int KBlocks,
    int QRows, int KRows, int QRowsPerSequence, int Chunks, int PaddedHeadDim, PackedSequences QSequences, PackedSequences KSequences)
{
    /// <summary>Packed sequences: the output's batch stride is unused (rows come from cu_seqlens).</summary>
    public bool IsPacked => QSequences.Packed != 0;

    /// <summary>A dense batch; <paramref name="noSequences"/> is any valid view passed for the unread cu_seqlens.</summary>
    public static RunnerGrid Dense(AttentionShape shape, ArrayView<int> noSequences) =>
        new(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.HeadDim, shape.Nq, shape.Nk, shape.QTiles, shape.KBlocks,
            shape.NqPad, shape.NkPad, shape.Nq, shape.KStatsChunks, shape.PaddedHeadDim,
            PackedSequences.Dense(noSequences), PackedSequences.Dense(noSequences));

    /// <summary>A packed batch described by cu_seqlens on the accelerator.</summary>
    public static RunnerGrid Packed(VarlenShape shape, ArrayView<int> cuSeqlensQ, ArrayView<int> cuSeqlensK) =>
        new(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.HeadDim, shape.TotalQ, shape.TotalK, shape.QTiles, shape.KBlocks,
            shape.QRows, shape.KRows, shape.MaxQ, shape.KStatsChunks, shape.PaddedHeadDim,
            PackedSequences.Of(cuSeqlensQ, shape.TotalQ, shape.MaxQ), PackedSequences.Of(cuSeqlensK, shape.TotalK, shape.MaxK));
}

/// <summary>The quantized tensors one attention call reads (views of <see cref="QuantizedAttentionInputs"/> or of a packed call's buffers).</summary>
internal readonly record struct QuantizedViews(ArrayView<sbyte> Q, ArrayView<float> QScale, ArrayView<sbyte> K, ArrayView<float> KScale,
    ArrayView<uint> V, ArrayView<float> VScale, ArrayView<float> VMean, ArrayView<float> KStats, ArrayView<float> VStats);
