using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Attention;

namespace SageAttn.Kernels.Host;

/// <summary>Creates the ILGPU contexts and accelerators the kernels run on.</summary>
public static class AcceleratorFactory
{
    /// <summary>
    /// A context with the CPU accelerator shaped like an NVIDIA GPU (warp 32, which the tensor-core
    /// emulation needs; ILGPU's default CPU device has warp 4) and, when <paramref name="includeCuda"/>,
    /// CUDA devices.
    /// </summary>
    /// <remarks>
    /// One simulated multiprocessor with as many warps as the largest group a kernel launches (the wgmma kernel at
    /// <see cref="HopperAttentionKernel.MaxWarpGroups"/> warpgroups: 16 warps): ILGPU runs every simulated thread of it
    /// on an OS thread. ILGPU's NVIDIA preset (32 warps) ran the CPU Hopper tests 11% slower on two cores; two
    /// multiprocessors 14% slower.
    /// </remarks>
    public static Context CreateContext(bool includeCuda) => Context.Create(builder =>
    {
        builder.CPU(new CPUDevice(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: MaxGroupThreads / 32, numMultiprocessors: 1))
            .Optimize(OptimizationLevel.O2);
        if (includeCuda)
            builder.Cuda();
    });

    /// <summary>Threads of the largest group any kernel launches: the wgmma kernel's block at its most warpgroups.</summary>
    private const int MaxGroupThreads = HopperAttentionKernel.MaxWarpGroups * HopperAttentionKernel.Threads;

    /// <summary>The CPU accelerator (CI, tests, demos without a GPU).</summary>
    public static Accelerator CreateCpu(Context context) => context.CreateCPUAccelerator(0);

    /// <summary>
    /// ILGPU's CUDA accelerator for the first CUDA device, or null when there is none. ILGPU 1.5.3 caps its
    /// PTX target at sm_80, where the e4m3 tensor-core instructions do not exist, so the target is raised to
    /// the device's own architecture (at most sm_90) before the accelerator compiles anything.
    /// </summary>
    public static Accelerator? TryCreateCuda(Context context)
    {
        var devices = context.GetCudaDevices();
        var device = devices.Count > 0 ? devices[0] : null;
        if (device is null)
            return null;
        var architecture = device.Architecture ?? CudaArchitecture.SM_80;
        var target = architecture >= CudaArchitecture.SM_90 ? CudaArchitecture.SM_90 : architecture;
        var property = typeof(CudaCapabilityContext).GetProperty(nameof(CudaCapabilityContext.TargetArchitecture))
            ?? throw new InvalidOperationException("ILGPU's CudaCapabilityContext has no TargetArchitecture property.");
        property.SetValue(device.Capabilities, target);
        return device.CreateAccelerator(context);
    }
}
