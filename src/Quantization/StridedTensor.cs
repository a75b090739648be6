using ILGPU;

namespace SageAttn.Quantization;

/// <summary>
/// A 4-D attention input [batch, heads, tokens, headDim] of 16-bit elements addressed through strides,
/// so both tensor layouts (HND = [B, H, N, D] and NHD = [B, N, H, D]) are read in place.
/// </summary>
/// <remarks>Strides are in elements. The head dimension must be contiguous (stride 1).</remarks>
public struct StridedTensor
{
    /// <summary>The raw fp16 or bf16 bit patterns.</summary>
    public ArrayView<ushort> Data;
    public long StrideBatch, StrideHead, StrideToken;
    public int Batch, Heads, Tokens, HeadDim;
    /// <summary>
    /// 1 when the view's first element is 8-byte aligned (fresh allocations are; a tensor slice may not be),
    /// which lets kernels read aligned channel groups with vector loads. 0 is always safe.
    /// </summary>
    public int Aligned8;
    /// <summary>
    /// Element index of (0, 0, 0, 0) in <see cref="Data"/>: 0, or a packed sequence's first token once narrowed
    /// (<see cref="Narrow"/>). An index, not a moved view: ILGPU proves the 16-byte alignment of vector loads only for
    /// the kernel parameter's own view (a view moved by a run-time offset got eight 2-byte loads per slice).
    /// </summary>
    public long Origin;

    public StridedTensor(ArrayView<ushort> data, int batch, int heads, int tokens, int headDim,
        long strideBatch, long strideHead, long strideToken, bool aligned8 = false)
    {
        Aligned8 = aligned8 ? 1 : 0;
        Data = data;
        Batch = batch; Heads = heads; Tokens = tokens; HeadDim = headDim;
        StrideBatch = strideBatch; StrideHead = strideHead; StrideToken = strideToken;
    }

    /// <summary>Element index of (b, h, n, 0).</summary>
    public readonly long RowOffset(int b, int h, int n) => Origin + b * StrideBatch + h * StrideHead + n * StrideToken;

    /// <summary>
    /// The tokens of a packed sequence as a tensor of their own (batch 1, <see cref="SequenceSpan.Length"/> tokens from its
    /// first one, which becomes <see cref="Origin"/>), so the dense tile code reads it unchanged; its loads check their
    /// alignment on the absolute index as before.
    /// </summary>
    public readonly StridedTensor Narrow(in SequenceSpan span)
    {
        var t = this;
        t.Batch = 1;
        t.Tokens = span.Length;
        t.Origin = Origin + span.TokenStart * StrideToken;
        return t;
    }
}
