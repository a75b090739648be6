namespace SageAttn.Quantization;

/// <summary>
/// Every numeric contract shared by the quantizers and the attention kernels, defined once.
/// </summary>
/// <remarks>
/// The tile sizes fix the layouts of the quantized tensors and their scales: a quantizer and the
/// kernel that reads its output must agree on them, so both read them from here.
/// Glossary: a "Q tile" is the query rows one thread block owns; a "warp slice" is the 16 rows one
/// warp owns (one m16 tensor-core tile); a "K block" is the keys processed per inner step.
/// </remarks>
public static class SageConstants
{
    /// <summary>Query rows per thread block: 4 warps of 16 rows.</summary>
    public const int QTileRows = 64;

    /// <summary>Query rows per warp: the M of mma.m16n8k32.</summary>
    public const int WarpRows = 16;

    /// <summary>Warps per attention thread block.</summary>
    public const int WarpsPerBlock = QTileRows / WarpRows;

    /// <summary>Keys per inner step of the attention kernel (and per K scale block).</summary>
    public const int KBlockKeys = 64;

    /// <summary>
    /// Q scale slots per Q tile in the per-thread layout: each warp slice has 8 scales, slot g covering
    /// rows g and g + 8 (the two rows lane group g = lane / 4 holds in the mma accumulator).
    /// </summary>
    public const int QScaleSlotsPerTile = WarpsPerBlock * 8;

    /// <summary>
    /// K scale slots per K block in the per-thread layout: slot t = lane % 4 covers keys 8j + 2t and
    /// 8j + 2t + 1 for j = 0..7 (the accumulator columns lane t holds).
    /// </summary>
    public const int KScaleSlotsPerBlock = 4;

    /// <summary>Tokens per partial sum of the channel statistics (K and V smoothing, V scales). 64 was tried: more blocks in flight, but the quantizers then sum 4x the partials per channel (slower end to end at 16K on the H100).</summary>
    public const int StatsChunkTokens = 256;

    /// <summary>log2(e): the softmax runs in exp2, so logits are scaled by it once, folded into the Q scale.</summary>
    public const float Log2E = 1.4426950408889634f;

    /// <summary>ln(2), to turn the kernel's log2-domain log-sum-exp back into natural log.</summary>
    public const float Ln2 = 0.6931471805599453f;

    /// <summary>
    /// log2(448): P is computed as exp2(s - max + shift) so its largest value is 448, the largest finite
    /// e4m3 value, using the whole FP8 range. The row sum carries the same factor, so it cancels.
    /// </summary>
    public const float Fp8Shift = 8.807354922057604f;

    /// <summary>
    /// The logit given to masked keys (causal, tails). Large and finite, never -inf, so max and exp2
    /// never produce NaN even for a block whose keys are all masked.
    /// </summary>
    public const float MaskedLogit = -5e6f;

    /// <summary>Floor for a block's absolute maximum before it becomes a scale: an all-zero block must not give a zero scale (NaN).</summary>
    public const float ScaleEpsilon = 1e-7f;

    /// <summary>Largest INT8 magnitude used (symmetric: -127..127).</summary>
    public const float Int8Max = 127f;

    /// <summary>V scale target for FP32 P·V accumulation: the largest finite e4m3 value.</summary>
    public const float VMaxFp32Accum = 448f;

    /// <summary>
    /// V scale target for FP16 P·V accumulation (v2++): one 64-key block sums at most 64 products of
    /// P ≤ 448 and V ≤ 2.25, so 64 · 448 · 2.25 = 64512 stays below the FP16 maximum 65504.
    /// </summary>
    public const float VMaxFp16Accum = 2.25f;

    /// <summary>
    /// FP16 P·V keeps V in FP16; a channel whose magnitude exceeds fp16's largest finite value (possible only for bf16
    /// inputs) is scaled down by a power of two so it cannot overflow. fp16 inputs therefore never scale, and the fused
    /// quantization does not read their V statistics (the P·V products accumulate in FP32, so no headroom is needed).
    /// </summary>
    public const float VMaxFp16Value = 65504f;

    /// <summary>Head dimension padded to what the kernels support natively (64 or 128).</summary>
    public static int PaddedHeadDim(int headDim) => headDim <= 64 ? 64 : 128;

    /// <summary>Rounds a length up to a multiple of <paramref name="multiple"/>.</summary>
    public static int RoundUp(int length, int multiple) => (length + multiple - 1) / multiple * multiple;
}
