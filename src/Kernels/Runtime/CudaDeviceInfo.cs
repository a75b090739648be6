namespace SageAttn.Kernels.Runtime;

/// <summary>Device facts that decide the PTX target and launch limits.</summary>
/// <param name="Ordinal">Device ordinal as CUDA numbers it (cuda:N).</param>
/// <param name="Name">Marketing name, e.g. "NVIDIA H100 80GB HBM3".</param>
/// <param name="ComputeCapabilityMajor">e.g. 9 on Hopper.</param>
/// <param name="ComputeCapabilityMinor">e.g. 0 on Hopper.</param>
/// <param name="MultiprocessorCount">Number of SMs (132 on H100 SXM).</param>
/// <param name="MaxSharedMemoryPerBlockOptin">Largest dynamic shared memory a block may opt into, in bytes.</param>
public sealed record CudaDeviceInfo(
    int Ordinal,
    string Name,
    int ComputeCapabilityMajor,
    int ComputeCapabilityMinor,
    int MultiprocessorCount,
    int MaxSharedMemoryPerBlockOptin)
{
    /// <summary>(major, minor), the form variant selection and PTX targets take.</summary>
    public (int Major, int Minor) ComputeCapability => (ComputeCapabilityMajor, ComputeCapabilityMinor);
}
