using ILGPU;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// Everything the attention kernel reads and writes. The quantized tensors are the quantizers'
/// contiguous outputs; only O (and the inputs the quantizers read) is addressed through strides.
/// </summary>
public struct AttentionParams
{
    /// <summary>INT8 Q as words, [B, Hq, NqPad, Dp] bytes.</summary>
    public ArrayView<uint> Q;
    /// <summary>Q scales (sm_scale · log2 e folded in), per-thread layout [B, Hq, NqPad / 64 · 32].</summary>
    public ArrayView<float> QScale;
    /// <summary>INT8 K (smoothed) as words, [B, Hkv, NkPad, Dp] bytes.</summary>
    public ArrayView<uint> K;
    /// <summary>K scales, per-thread layout [B, Hkv, NkPad / 64 · 4].</summary>
    public ArrayView<float> KScale;
    /// <summary>Transposed V words [B, Hkv, Dp, NkPad] (FP8 permuted, or FP16).</summary>
    public ArrayView<uint> V;
    public ArrayView<float> VScale;
    public ArrayView<float> VMean;
    /// <summary>Output bits (fp16/bf16), addressed by the strides below.</summary>
    public ArrayView<ushort> O;
    /// <summary>Natural-log LSE [B, Hq, Nq]; written when WriteLse is 1.</summary>
    public ArrayView<float> Lse;
    /// <summary>q·mean(K)·sm_scale per row [B, Hq, Nq], added to the LSE (K smoothing); used when WriteLse is 1.</summary>
    public ArrayView<float> LseCorrection;
    /// <summary>
    /// Packed (varlen) batches only (<see cref="VarlenAttentionKernel"/>): the query and key sequences. Then every
    /// tensor above has batch 1 (one packed tensor), Nq and Nk are the total token counts Tq and Tk, NqPad and
    /// NkPad the padded rows (<see cref="PackedSequences.PaddedRows"/>), V scales and means stay [B, Hkv, Dp],
    /// the LSE is [Hq, Tq] and the causal offset is Lk − Lq of each sequence. Ignored by the dense kernel.
    /// </summary>
    public PackedSequences QSequences, KSequences;
    public long OStrideBatch, OStrideHead, OStrideToken;
    public int HeadsQ, HeadsKv, Nq, Nk, HeadDim, NqPad, NkPad;
    /// <summary>1: key j is visible to query i only when j ≤ i + CausalOffset.</summary>
    public int Causal;
    /// <summary>0 aligns the causal mask top-left; Nk − Nq aligns it bottom-right (KV-cached prefill).</summary>
    public int CausalOffset;
    public int OutputType;
    public int WriteLse;
    public int SmoothV;
    /// <summary>1 when LseCorrection holds values (K smoothing on); 0 adds nothing.</summary>
    public int HasLseCorrection;
    /// <summary>
    /// 1 when channels 2i and 2i + 1 of every O row share one aligned 32-bit word (O's element index and its three
    /// strides even): the epilogue then stores channel pairs as words (<see cref="Tile.WriteRows"/>); 0 stores elements.
    /// </summary>
    public int PairedOutput;

    /// <summary>
    /// <see cref="PairedOutput"/> for an O whose first element is 4-byte aligned (<paramref name="wordAligned"/>) and
    /// whose strides (elements) are the given ones.
    /// </summary>
    public static int PairedOutputFor(bool wordAligned, long strideBatch, long strideHead, long strideToken) =>
        wordAligned && ((strideBatch | strideHead | strideToken) & 1) == 0 ? 1 : 0;
}
