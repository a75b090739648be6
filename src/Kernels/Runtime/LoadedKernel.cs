namespace SageAttn.Kernels.Runtime;

/// <summary>
/// A kernel function loaded into one CUDA context (handles from <c>cuModuleLoadDataEx</c> and
/// <c>cuModuleGetFunction</c>). Owned and unloaded by <see cref="CudaKernelLauncher"/>.
/// </summary>
public sealed class LoadedKernel
{
    private readonly object _sharedLock = new();
    private int _dynamicSharedLimit = CudaKernelLauncher.DefaultDynamicSharedLimit;

    internal LoadedKernel(string entryName, IntPtr context, IntPtr module, IntPtr function, string jitInfoLog)
    {
        EntryName = entryName;
        Context = context;
        Module = module;
        Function = function;
        JitInfoLog = jitInfoLog;
    }

    /// <summary>The PTX <c>.entry</c> name.</summary>
    public string EntryName { get; }

    /// <summary>The context the module lives in.</summary>
    public IntPtr Context { get; }

    /// <summary>The <c>CUmodule</c> handle.</summary>
    public IntPtr Module { get; }

    /// <summary>The <c>CUfunction</c> handle.</summary>
    public IntPtr Function { get; }

    /// <summary>ptxas info output from the JIT (register and spill counts when available).</summary>
    public string JitInfoLog { get; }

    /// <summary>Registers per thread the JIT allocated.</summary>
    public int RegistersPerThread
    {
        get
        {
            CudaDriver.Check(
                CudaNative.cuFuncGetAttribute(out int value, CudaDriver.FunctionAttributeNumRegisters, Function),
                $"reading the register count of {EntryName}");
            return value;
        }
    }

    /// <summary>Raises <c>MAX_DYNAMIC_SHARED_SIZE_BYTES</c> once when a launch needs more than the current limit.</summary>
    internal void EnsureDynamicShared(int bytes)
    {
        if (bytes <= Volatile.Read(ref _dynamicSharedLimit))
        {
            return;
        }

        lock (_sharedLock)
        {
            if (bytes <= _dynamicSharedLimit)
            {
                return;
            }

            CudaDriver.Check(
                CudaNative.cuFuncSetAttribute(Function, CudaDriver.FunctionAttributeMaxDynamicSharedSizeBytes, bytes),
                $"raising the dynamic shared memory limit of {EntryName} to {bytes} bytes");
            // A kernel with this much shared memory wants all of the SM's unified L1/shared storage as shared memory, so
            // that blocks which could share an SM (two wgmma blocks of 80 KB) are not held to one by a smaller carveout.
            CudaDriver.Check(
                CudaNative.cuFuncSetAttribute(Function, CudaDriver.FunctionAttributePreferredSharedMemoryCarveout, 100),
                $"preferring the largest shared memory carveout for {EntryName}");
            Volatile.Write(ref _dynamicSharedLimit, bytes);
        }
    }

    internal void Unload() => CudaNative.cuModuleUnload(Module);
}
