namespace SageAttn.Quantization.Reference;

/// <summary>A host-side [batch, heads, tokens, headDim] view of 16-bit elements with strides, for the reference code.</summary>
public sealed record HostTensor(ushort[] Data, int Batch, int Heads, int Tokens, int HeadDim,
    long StrideBatch, long StrideHead, long StrideToken, TensorElementType ElementType)
{
    public float this[int b, int h, int n, int c] =>
        Formats.HalfBits.ToFloat(Data[b * StrideBatch + h * StrideHead + n * StrideToken + c], ElementType);
}
