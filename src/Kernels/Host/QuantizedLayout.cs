using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Host;

/// <summary>
/// Element counts of the quantized tensors and statistics one attention call needs (layouts: see
/// <c>AttentionParams</c>), defined once for the ILGPU-allocated buffers (<see cref="QuantizedAttentionInputs"/>)
/// and for caller-provided scratch on the driver path (<see cref="CudaSageAttention"/>).
/// </summary>
/// <param name="QBytes">INT8 Q [B, Hq, NqPad, Dp] (sbyte elements).</param>
/// <param name="QScales">Q scales [B, Hq, QTiles · QScaleSlotsPerTile] (float elements).</param>
/// <param name="KBytes">INT8 K [B, Hkv, NkPad, Dp] (sbyte elements).</param>
/// <param name="KScales">K scales [B, Hkv, KBlocks · KScaleSlotsPerBlock] (float elements).</param>
/// <param name="VWords">Transposed V [B, Hkv, Dp, NkPad] packed in 32-bit words (4 FP8 or 2 FP16 per word).</param>
/// <param name="VScales">Per-channel V scales [B, Hkv, Dp] (float elements).</param>
/// <param name="VMeans">Per-channel V means [B, Hkv, Dp] (float elements).</param>
/// <param name="KStats">K channel statistics [B, Hkv, chunks, 3, Dp] (float elements).</param>
/// <param name="VStats">V channel statistics [B, Hkv, chunks, 3, Dp] (float elements).</param>
/// <param name="LseRows">Rows of the LSE and of its K-smoothing correction [B, Hq, Nq] (float elements).</param>
/// <param name="Coordination">The one-launch quantization's ticket, per-head arrival counters and K channel means (int elements; see <c>OneLaunchQuantizeParams.Coordination</c>).</param>
public sealed record QuantizedLayout(
    long QBytes, long QScales, long KBytes, long KScales, long VWords,
    long VScales, long VMeans, long KStats, long VStats, long LseRows, long Coordination)
{
    /// <summary>The element counts for <paramref name="shape"/> quantized as <paramref name="options"/> asks.</summary>
    public static QuantizedLayout For(AttentionShape shape, SageAttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(options);
        int dp = shape.PaddedHeadDim;
        long qHeads = (long)shape.Batch * shape.HeadsQ, kvHeads = (long)shape.Batch * shape.HeadsKv;
        int elementsPerWord = options.VFormat == VFormat.Fp16 ? 2 : 4;
        return new QuantizedLayout(
            QBytes: qHeads * shape.NqPad * dp,
            QScales: qHeads * shape.QTiles * SageConstants.QScaleSlotsPerTile,
            KBytes: kvHeads * shape.NkPad * dp,
            KScales: kvHeads * shape.KBlocks * SageConstants.KScaleSlotsPerBlock,
            VWords: kvHeads * dp * shape.NkPad / elementsPerWord,
            VScales: kvHeads * dp,
            VMeans: kvHeads * dp,
            KStats: kvHeads * shape.KStatsChunks * 3 * dp,
            VStats: kvHeads * shape.KStatsChunks * 3 * dp,
            LseRows: qHeads * shape.Nq,
            Coordination: QkvQuantizeOneLaunchKernel.CoordinationCount(kvHeads, dp));
    }

    /// <summary>Bytes of each scratch buffer of the driver path, in <see cref="QuantizedScratch"/> order.</summary>
    public IReadOnlyList<(string Name, long Bytes)> ScratchBytes =>
    [
        (nameof(QuantizedScratch.Q), QBytes),
        (nameof(QuantizedScratch.QScale), QScales * sizeof(float)),
        (nameof(QuantizedScratch.K), KBytes),
        (nameof(QuantizedScratch.KScale), KScales * sizeof(float)),
        (nameof(QuantizedScratch.V), VWords * sizeof(uint)),
        (nameof(QuantizedScratch.VScale), VScales * sizeof(float)),
        (nameof(QuantizedScratch.VMean), VMeans * sizeof(float)),
        (nameof(QuantizedScratch.KStats), KStats * sizeof(float)),
        (nameof(QuantizedScratch.VStats), VStats * sizeof(float)),
        (nameof(QuantizedScratch.Coordination), Coordination * sizeof(int)),
    ];
}
