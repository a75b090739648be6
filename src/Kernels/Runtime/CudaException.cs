namespace SageAttn.Kernels.Runtime;

/// <summary>
/// A CUDA driver API call failed. Carries the driver's error code and name and says what was
/// being done (for launches: the kernel, grid, block and dynamic shared memory size).
/// </summary>
public class CudaException : Exception
{
    /// <summary>Creates an exception for a failed driver call.</summary>
    /// <param name="result">The <c>CUresult</c> value (0 is success and never thrown).</param>
    /// <param name="errorName">The driver's name for it, e.g. <c>CUDA_ERROR_INVALID_VALUE</c>.</param>
    /// <param name="operation">What was being done, in words, with the relevant arguments.</param>
    /// <param name="detail">Extra text from the driver, e.g. the PTX JIT error log; may be empty.</param>
    public CudaException(int result, string errorName, string operation, string detail = "")
        : base(FormatMessage(result, errorName, operation, detail))
    {
        Result = result;
        ErrorName = errorName;
        Operation = operation;
        Detail = detail;
    }

    /// <summary>Creates an exception that is not tied to a driver result (e.g. missing libcuda).</summary>
    public CudaException(string message, Exception? inner = null)
        : base(message, inner)
    {
        ErrorName = string.Empty;
        Operation = string.Empty;
        Detail = string.Empty;
    }

    /// <summary>The <c>CUresult</c> code; 0 when the failure did not come from a driver call.</summary>
    public int Result { get; }

    /// <summary>The driver's error name, e.g. <c>CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES</c>.</summary>
    public string ErrorName { get; }

    /// <summary>What was being done when the call failed.</summary>
    public string Operation { get; }

    /// <summary>Driver-provided detail such as the JIT error log; empty when none.</summary>
    public string Detail { get; }

    private static string FormatMessage(int result, string errorName, string operation, string detail)
    {
        var message = $"CUDA driver error {errorName} ({result}) while {operation}.";
        return string.IsNullOrWhiteSpace(detail) ? message : message + Environment.NewLine + detail.Trim();
    }
}
