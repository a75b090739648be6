using System.Runtime.InteropServices;
using System.Text;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Checked access to the CUDA driver API: every failing call becomes a <see cref="CudaException"/>
/// naming the driver error and the operation; a missing driver becomes a
/// <see cref="CudaUnavailableException"/> instead of a crash.
/// </summary>
/// <remarks>
/// Only the driver API is used (no runtime API, no ILGPU accelerator) so that kernels run in the
/// primary context that libtorch made current and on libtorch's stream.
/// </remarks>
public static unsafe class CudaDriver
{
    /// <summary><c>CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT</c>.</summary>
    private const int AttributeMultiprocessorCount = 16;

    /// <summary><c>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR</c>.</summary>
    private const int AttributeComputeCapabilityMajor = 75;

    /// <summary><c>CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR</c>.</summary>
    private const int AttributeComputeCapabilityMinor = 76;

    /// <summary><c>CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN</c>: the opt-in limit (227 KB on H100).</summary>
    private const int AttributeMaxSharedPerBlockOptin = 97;

    /// <summary><c>CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES</c>.</summary>
    public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;

    /// <summary><c>CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT</c> (percent of the unified L1/shared storage).</summary>
    public const int FunctionAttributePreferredSharedMemoryCarveout = 9;

    /// <summary><c>CU_FUNC_ATTRIBUTE_NUM_REGS</c>.</summary>
    public const int FunctionAttributeNumRegisters = 4;

    private static readonly Lazy<string?> LoadFailure = new(ProbeLibrary, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly object InitLock = new();
    private static int _initResult = -1;
    // A device's name and attributes never change in a process, and the backend asks for them on every call.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, CudaDeviceInfo> DeviceInfos = new();

    /// <summary>True when libcuda.so.1 can be loaded. Does not call cuInit (see <see cref="TryInitialize"/>).</summary>
    public static bool IsAvailable => LoadFailure.Value is null;

    /// <summary>
    /// Loads the driver and calls <c>cuInit(0)</c> once; returns false with a reason instead of
    /// throwing, for tests and capability probes.
    /// </summary>
    public static bool TryInitialize(out string reason)
    {
        try
        {
            Initialize();
            reason = string.Empty;
            return true;
        }
        catch (CudaException e)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>Loads the driver and calls <c>cuInit(0)</c> once per process.</summary>
    /// <exception cref="CudaUnavailableException">libcuda.so.1 is missing or cuInit failed (e.g. no device).</exception>
    public static void Initialize()
    {
        if (LoadFailure.Value is { } failure)
        {
            throw new CudaUnavailableException(failure);
        }

        lock (InitLock)
        {
            if (_initResult < 0)
            {
                _initResult = CudaNative.cuInit(0);
            }
        }

        if (_initResult != 0)
        {
            throw new CudaUnavailableException(
                $"cuInit failed with {ErrorName(_initResult)} ({_initResult}): {ErrorString(_initResult)}");
        }
    }

    /// <summary>Driver version as an integer, e.g. 12090 for CUDA 12.9.</summary>
    public static int DriverVersion()
    {
        Initialize();
        Check(CudaNative.cuDriverGetVersion(out int version), "querying the driver version");
        return version;
    }

    /// <summary>Number of CUDA devices visible to this process.</summary>
    public static int DeviceCount()
    {
        Initialize();
        Check(CudaNative.cuDeviceGetCount(out int count), "counting devices");
        return count;
    }

    /// <summary>Facts about device <paramref name="ordinal"/> that kernels and launchers need.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ordinal"/> is negative.</exception>
    public static CudaDeviceInfo GetDeviceInfo(int ordinal)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        // Five driver calls (~5 µs) the first time only.
        if (DeviceInfos.TryGetValue(ordinal, out var cached))
            return cached;
        Initialize();
        int device = GetDevice(ordinal);
        byte* name = stackalloc byte[256];
        Check(CudaNative.cuDeviceGetName(name, 256, device), $"reading the name of device {ordinal}");
        var info = new CudaDeviceInfo(
            ordinal,
            Marshal.PtrToStringUTF8((IntPtr)name) ?? string.Empty,
            Attribute(device, AttributeComputeCapabilityMajor, ordinal),
            Attribute(device, AttributeComputeCapabilityMinor, ordinal),
            Attribute(device, AttributeMultiprocessorCount, ordinal),
            Attribute(device, AttributeMaxSharedPerBlockOptin, ordinal));
        return DeviceInfos.GetOrAdd(ordinal, info);
    }

    /// <summary>The context current on this thread, or <see cref="IntPtr.Zero"/> if none.</summary>
    public static IntPtr GetCurrentContext()
    {
        Initialize();
        Check(CudaNative.cuCtxGetCurrent(out var context), "reading the current context");
        return context;
    }

    /// <summary>
    /// Makes sure a context is current on this thread: if none is, retains the primary context of
    /// device <paramref name="ordinal"/> (the one libtorch, cuBLAS and cuDNN use) and makes it
    /// current. Returns the current context.
    /// </summary>
    /// <remarks>
    /// The retain is deliberately never released: the primary context must outlive every cached
    /// module, i.e. the process. If libtorch already made a context current, that one is used.
    /// </remarks>
    public static IntPtr EnsureContext(int ordinal)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        var current = GetCurrentContext();
        if (current != IntPtr.Zero)
        {
            return current;
        }

        int device = GetDevice(ordinal);
        Check(CudaNative.cuDevicePrimaryCtxRetain(out var primary, device), $"retaining the primary context of device {ordinal}");
        Check(CudaNative.cuCtxSetCurrent(primary), $"making the primary context of device {ordinal} current");
        return primary;
    }

    /// <summary>Ordinal of the device of the current context.</summary>
    public static int CurrentDevice()
    {
        Initialize();
        Check(CudaNative.cuCtxGetDevice(out int device), "reading the device of the current context");
        return device;
    }

    /// <summary>Free and total bytes of the current context's device (<c>cuMemGetInfo</c>; used to check for leaks).</summary>
    public static (long Free, long Total) MemoryInfo()
    {
        Initialize();
        Check(CudaNative.cuMemGetInfo(out var free, out var total), "reading device memory info");
        return ((long)free, (long)total);
    }

    /// <summary>Waits for all work on <paramref name="stream"/> (0 = legacy default stream).</summary>
    public static void SynchronizeStream(IntPtr stream)
    {
        Initialize();
        Check(CudaNative.cuStreamSynchronize(stream), $"synchronizing stream 0x{stream:x}");
    }

    /// <summary>Enqueues setting <paramref name="count"/> 32-bit words at <paramref name="destination"/> to zero on <paramref name="stream"/>.</summary>
    public static void ZeroAsync(IntPtr destination, long count, IntPtr stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Initialize();
        Check(CudaNative.cuMemsetD32Async(destination, 0u, (nuint)count, stream), $"zeroing {count} words at 0x{destination:x}");
    }

    /// <summary>Allocates device memory in the current context (tests and benchmarks only).</summary>
    public static IntPtr Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        Initialize();
        Check(CudaNative.cuMemAlloc(out var pointer, (nuint)bytes), $"allocating {bytes} bytes of device memory");
        return pointer;
    }

    /// <summary>Frees memory from <see cref="Allocate"/>.</summary>
    public static void Free(IntPtr pointer)
    {
        if (pointer == IntPtr.Zero)
        {
            return;
        }

        Check(CudaNative.cuMemFree(pointer), $"freeing device memory 0x{pointer:x}");
    }

    /// <summary>Copies host data to device memory (synchronous).</summary>
    public static void CopyToDevice<T>(IntPtr destination, ReadOnlySpan<T> source)
        where T : unmanaged
    {
        Initialize();
        fixed (T* pointer = source)
        {
            nuint bytes = (nuint)(source.Length * sizeof(T));
            Check(CudaNative.cuMemcpyHtoD(destination, pointer, bytes), $"copying {bytes} bytes host to device");
        }
    }

    /// <summary>Copies device memory to host (synchronous).</summary>
    public static void CopyToHost<T>(Span<T> destination, IntPtr source)
        where T : unmanaged
    {
        Initialize();
        fixed (T* pointer = destination)
        {
            nuint bytes = (nuint)(destination.Length * sizeof(T));
            Check(CudaNative.cuMemcpyDtoH(pointer, source, bytes), $"copying {bytes} bytes device to host");
        }
    }

    /// <summary>The driver's name for a <c>CUresult</c>, or <c>CUDA_ERROR_&lt;code&gt;</c> if unknown.</summary>
    public static string ErrorName(int result)
    {
        if (IsAvailable && CudaNative.cuGetErrorName(result, out var name) == 0 && name != IntPtr.Zero)
        {
            return Marshal.PtrToStringUTF8(name) ?? $"CUDA_ERROR_{result}";
        }

        return $"CUDA_ERROR_{result}";
    }

    /// <summary>The driver's description of a <c>CUresult</c>, or empty if unknown.</summary>
    public static string ErrorString(int result)
    {
        if (IsAvailable && CudaNative.cuGetErrorString(result, out var text) == 0 && text != IntPtr.Zero)
        {
            return Marshal.PtrToStringUTF8(text) ?? string.Empty;
        }

        return string.Empty;
    }

    /// <summary>Throws a <see cref="CudaException"/> when <paramref name="result"/> is not success.</summary>
    /// <param name="result">The <c>CUresult</c> of a driver call.</param>
    /// <param name="operation">What was being done, e.g. "launching Kernel_Axpb (grid 4x1x1, ...)".</param>
    /// <param name="detail">Optional extra text such as the JIT log.</param>
    public static void Check(int result, string operation, string detail = "")
    {
        if (result != 0)
        {
            var description = ErrorString(result);
            var fullDetail = string.IsNullOrEmpty(description) ? detail : description + Environment.NewLine + detail;
            throw new CudaException(result, ErrorName(result), operation, fullDetail);
        }
    }

    /// <summary>Encodes a string as a NUL-terminated UTF-8 buffer for the driver.</summary>
    internal static byte[] ToCString(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    private static int GetDevice(int ordinal)
    {
        Check(CudaNative.cuDeviceGet(out int device, ordinal), $"getting device {ordinal}");
        return device;
    }

    private static int Attribute(int device, int attribute, int ordinal)
    {
        Check(CudaNative.cuDeviceGetAttribute(out int value, attribute, device), $"reading attribute {attribute} of device {ordinal}");
        return value;
    }

    private static string? ProbeLibrary()
    {
        if (NativeLibrary.TryLoad(CudaNative.Library, out _))
        {
            return null;
        }

        return $"The CUDA driver library {CudaNative.Library} could not be loaded: no NVIDIA driver is installed " +
            "or it is not on the loader path (this machine has no usable CUDA GPU).";
    }
}
