using System.Runtime.InteropServices;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Raw P/Invoke declarations for the CUDA driver API (libcuda.so.1). Every function returns a
/// <c>CUresult</c> (0 = success); <see cref="CudaDriver"/> turns failures into exceptions.
/// </summary>
/// <remarks>
/// Bound by exported name; the <c>_v2</c> names are the ones the CUDA headers map the plain API
/// names to since CUDA 4/11 (64-bit sizes, stream-ordered semantics). Only call these after
/// <see cref="CudaDriver.IsAvailable"/> is true: a missing library would throw
/// <see cref="DllNotFoundException"/> at the first call.
/// </remarks>
internal static unsafe class CudaNative
{
    /// <summary>The Linux driver library name; the soname is stable across driver versions.</summary>
    public const string Library = "libcuda.so.1";

    [DllImport(Library)] public static extern int cuInit(uint flags);
    [DllImport(Library)] public static extern int cuDriverGetVersion(out int version);
    [DllImport(Library)] public static extern int cuGetErrorName(int error, out IntPtr name);
    [DllImport(Library)] public static extern int cuGetErrorString(int error, out IntPtr text);

    [DllImport(Library)] public static extern int cuDeviceGetCount(out int count);
    [DllImport(Library)] public static extern int cuDeviceGet(out int device, int ordinal);
    [DllImport(Library)] public static extern int cuDeviceGetAttribute(out int value, int attribute, int device);
    [DllImport(Library)] public static extern int cuDeviceGetName(byte* name, int length, int device);

    [DllImport(Library)] public static extern int cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [DllImport(Library, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static extern int cuDevicePrimaryCtxRelease(int device);
    [DllImport(Library)] public static extern int cuCtxGetCurrent(out IntPtr context);
    [DllImport(Library)] public static extern int cuCtxSetCurrent(IntPtr context);
    [DllImport(Library)] public static extern int cuCtxGetDevice(out int device);
    [DllImport(Library)] public static extern int cuCtxSynchronize();

    [DllImport(Library)] public static extern int cuModuleLoadDataEx(out IntPtr module, byte* image, uint numOptions, int* options, IntPtr* optionValues);
    [DllImport(Library)] public static extern int cuModuleUnload(IntPtr module);
    [DllImport(Library)] public static extern int cuModuleGetFunction(out IntPtr function, IntPtr module, byte* name);
    [DllImport(Library)] public static extern int cuFuncSetAttribute(IntPtr function, int attribute, int value);
    [DllImport(Library)] public static extern int cuFuncGetAttribute(out int value, int attribute, IntPtr function);

    [DllImport(Library)]
    public static extern int cuLaunchKernel(
        IntPtr function,
        uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ,
        uint sharedMemBytes,
        IntPtr stream,
        void** kernelParams,
        void** extra);

    [DllImport(Library, EntryPoint = "cuMemAlloc_v2")] public static extern int cuMemAlloc(out IntPtr pointer, nuint bytes);
    [DllImport(Library, EntryPoint = "cuMemFree_v2")] public static extern int cuMemFree(IntPtr pointer);
    [DllImport(Library, EntryPoint = "cuMemcpyHtoD_v2")] public static extern int cuMemcpyHtoD(IntPtr destination, void* source, nuint bytes);
    [DllImport(Library, EntryPoint = "cuMemcpyDtoH_v2")] public static extern int cuMemcpyDtoH(void* destination, IntPtr source, nuint bytes);

    [DllImport(Library)]
    public static extern int cuTensorMapEncodeTiled(
        void* tensorMap, int dataType, uint rank, IntPtr globalAddress, ulong* globalDim, ulong* globalStrides,
        uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);

    [DllImport(Library)] public static extern int cuMemsetD32Async(IntPtr destination, uint value, nuint count, IntPtr stream);

    [DllImport(Library, EntryPoint = "cuMemGetInfo_v2")] public static extern int cuMemGetInfo(out nuint free, out nuint total);

    [DllImport(Library)] public static extern int cuStreamSynchronize(IntPtr stream);
    [DllImport(Library)] public static extern int cuEventCreate(out IntPtr cudaEvent, uint flags);
    [DllImport(Library)] public static extern int cuEventRecord(IntPtr cudaEvent, IntPtr stream);
    [DllImport(Library)] public static extern int cuEventSynchronize(IntPtr cudaEvent);
    [DllImport(Library)] public static extern int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);
    [DllImport(Library, EntryPoint = "cuEventDestroy_v2")] public static extern int cuEventDestroy(IntPtr cudaEvent);
}
