using SageAttn.Backend;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using TorchSharp;

namespace SageAttn.Cli;

/// <summary>
/// <c>sageattn info</c>: where libtorch came from, the CUDA devices the driver sees with the variants that run on
/// each (and the automatic one), and the ILGPU CPU accelerator used for CPU tensors.
/// </summary>
public static class InfoCommand
{
    public static int Run(string[] args)
    {
        var source = LibTorchLoader.EnsureLoaded();
        Console.WriteLine($"libtorch: {source.Description}");
        Console.WriteLine($"torch.cuda.is_available(): {torch.cuda.is_available()}");
        if (CudaDriver.TryInitialize(out var reason))
        {
            int count = CudaDriver.DeviceCount();
            Console.WriteLine($"CUDA driver {CudaDriver.DriverVersion()}, {count} device(s)");
            for (int i = 0; i < count; i++)
            {
                var info = CudaDriver.GetDeviceInfo(i);
                var cc = info.ComputeCapability;
                var supported = VariantSelector.Supported(cc);
                string auto = supported.Count > 0 ? VariantSelector.Auto(cc).ToString() : "none (needs sm_80+)";
                Console.WriteLine($"  cuda:{i} {info.Name} sm_{cc.Item1}{cc.Item2}, {info.MultiprocessorCount} SMs; " +
                    $"variants: {(supported.Count > 0 ? string.Join(", ", supported) : "none")}; auto: {auto}");
            }
        }
        else
        {
            Console.WriteLine($"CUDA driver: not available ({reason})");
        }

        using var context = AcceleratorFactory.CreateContext(includeCuda: false);
        using var cpu = AcceleratorFactory.CreateCpu(context);
        Console.WriteLine($"ILGPU CPU accelerator: {cpu.Name} (warp {cpu.WarpSize}); CPU tensors run {VariantSelector.Cpu} by default");
        return 0;
    }
}
