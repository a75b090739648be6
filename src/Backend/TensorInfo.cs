using TorchSharp;

namespace SageAttn.Backend;

/// <summary>
/// The raw facts a kernel launch needs about a TorchSharp tensor.
/// </summary>
/// <param name="DataPointer">Address of element [0,...,0] (storage offset included).</param>
/// <param name="ElementCount">Number of elements (product of sizes).</param>
/// <param name="ElementType">Element dtype.</param>
/// <param name="DeviceType">CPU or CUDA.</param>
/// <param name="DeviceIndex">Device ordinal (-1 for CPU).</param>
/// <param name="Sizes">Shape.</param>
/// <param name="Strides">Strides in elements, not bytes.</param>
public sealed record TensorInfo(
    IntPtr DataPointer,
    long ElementCount,
    torch.ScalarType ElementType,
    DeviceType DeviceType,
    int DeviceIndex,
    long[] Sizes,
    long[] Strides)
{
    /// <summary>True when the strides are those of a row-major contiguous tensor of these sizes.</summary>
    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (int i = Sizes.Length - 1; i >= 0; i--)
            {
                if (Sizes[i] != 1 && Strides[i] != expected)
                {
                    return false;
                }

                expected *= Sizes[i];
            }

            return true;
        }
    }
}
