namespace SageAttn.Kernels.Runtime;

/// <summary>
/// The CUDA driver library (libcuda.so.1) could not be loaded or initialized: no NVIDIA driver,
/// no device, or a driver too old for what was requested.
/// </summary>
public sealed class CudaUnavailableException : CudaException
{
    /// <summary>Creates the exception with a reason naming what is missing.</summary>
    public CudaUnavailableException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
