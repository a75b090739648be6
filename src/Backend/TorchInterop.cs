using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// The raw-pointer and stream access TorchSharp does not expose: a tensor's data pointer and
/// libtorch's current CUDA stream.
/// </summary>
/// <remarks>
/// Only this class touches TorchSharp handles. <c>THSTensor_data</c> is exported by
/// libLibTorchSharp and returns <c>at::Tensor::data_ptr()</c>, which includes the storage offset;
/// <see cref="Tensor.Handle"/> is the <c>at::Tensor*</c> it takes.
/// </remarks>
public static class TorchInterop
{
    private static readonly object StreamGate = new();
    private static bool? _streamApiAvailable;

    /// <summary>The address of the tensor's first element (storage offset included).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="tensor"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The tensor was disposed.</exception>
    public static IntPtr DataPointer(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var handle = tensor.Handle;
        if (handle == IntPtr.Zero)
        {
            throw new ObjectDisposedException(nameof(tensor), "The tensor has been disposed.");
        }

        var pointer = NativeMethods.THSTensor_data(handle);
        torch.CheckForErrors();
        return pointer;
    }

    /// <summary>Pointer, element count, dtype, device, sizes and strides of <paramref name="tensor"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="tensor"/> is null.</exception>
    public static TensorInfo Describe(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return new TensorInfo(
            DataPointer(tensor),
            tensor.numel(),
            tensor.dtype,
            tensor.device_type,
            tensor.device_type == DeviceType.CPU ? -1 : tensor.device_index,
            tensor.shape,
            tensor.stride());
    }

    /// <summary>
    /// libtorch's current CUDA stream on <paramref name="device"/>, or 0 (the legacy default
    /// stream) when libtorch_cuda is not loaded.
    /// </summary>
    /// <remarks>
    /// TorchSharp has no stream API, so libtorch runs on the legacy default stream and this
    /// returns 0 in practice (checked on the H100); asking libtorch keeps us right if a user set
    /// another stream through native code. Without CUDA libtorch, 0 is the only stream there is.
    /// </remarks>
    /// <exception cref="InvalidOperationException">libtorch reported an error for that device.</exception>
    public static IntPtr CurrentCudaStream(int device)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(device);
        if (!StreamApiAvailable())
        {
            return IntPtr.Zero;
        }

        int rc = NativeMethods.aoti_torch_get_current_cuda_stream(device, out var stream);
        if (rc != 0)
        {
            throw new InvalidOperationException(
                $"aoti_torch_get_current_cuda_stream({device}) returned {rc}; is cuda:{device} a valid device?");
        }

        return stream;
    }

    private static bool StreamApiAvailable()
    {
        lock (StreamGate)
        {
            _streamApiAvailable ??= torch.cuda.is_available()
                && NativeLibrary.TryLoad("libtorch_cuda.so", typeof(TorchInterop).Assembly, null, out var library)
                && NativeLibrary.TryGetExport(library, "aoti_torch_get_current_cuda_stream", out _);
            return _streamApiAvailable.Value;
        }
    }

    private static class NativeMethods
    {
        [DllImport("LibTorchSharp")]
        public static extern IntPtr THSTensor_data(IntPtr tensor);

        [DllImport("libtorch_cuda.so")]
        public static extern int aoti_torch_get_current_cuda_stream(int device, out IntPtr stream);
    }

    /// <summary>
    /// Whether two devices are the same memory space: same type, and for CUDA the same ordinal (an unset index, -1, is the
    /// current device 0 as libtorch resolves it for tensors).
    /// </summary>
    internal static bool SameDevice(Device a, Device b) =>
        a.type == b.type && (a.type != DeviceType.CUDA || Math.Max(a.index, 0) == Math.Max(b.index, 0));
}
