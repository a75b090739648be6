using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>
/// A 4-D fp16/bf16 device tensor seen as [batch, heads, tokens, headDim] through element strides, for the
/// driver path (raw pointers from libtorch). NHD tensors are passed with their head and token strides swapped.
/// </summary>
/// <param name="Pointer">Device address of element [0, 0, 0, 0].</param>
/// <param name="ElementCount">Elements reachable from <paramref name="Pointer"/> (bounds for the stride check).</param>
/// <param name="Batch">B.</param>
/// <param name="Heads">H.</param>
/// <param name="Tokens">N.</param>
/// <param name="HeadDim">D (stride 1).</param>
/// <param name="StrideBatch">Elements between batches.</param>
/// <param name="StrideHead">Elements between heads.</param>
/// <param name="StrideToken">Elements between tokens.</param>
public readonly record struct DeviceTensor(
    IntPtr Pointer, long ElementCount, int Batch, int Heads, int Tokens, int HeadDim,
    long StrideBatch, long StrideHead, long StrideToken)
{
    /// <summary>
    /// The kernels' strided-tensor parameter with a default view (filled in by <c>KernelParamWriter</c>);
    /// vector loads are allowed when the first element is 8-byte aligned (a tensor slice may not be).
    /// </summary>
    internal StridedTensor ToStrided() =>
        new(default, Batch, Heads, Tokens, HeadDim, StrideBatch, StrideHead, StrideToken, aligned8: Pointer % 8 == 0);

    /// <summary>Checks non-null, non-negative strides and that every element lies inside <see cref="ElementCount"/>.</summary>
    /// <exception cref="ArgumentException">Names <paramref name="name"/>.</exception>
    internal void CheckExtent(string name)
    {
        if (Pointer == IntPtr.Zero)
            throw new ArgumentException("device pointer is null.", name);
        AttentionShape.CheckExtent(Batch, Heads, Tokens, HeadDim, StrideBatch, StrideHead, StrideToken, ElementCount, name);
    }
}
