using System.Reflection;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Runtime;

namespace SageAttn.Kernels.Host;

/// <summary>The wgmma kernel's device check and launch, shared by dense and packed calls.</summary>
public sealed partial class CudaSageAttention
{
    /// <summary>Throws when <paramref name="variant"/> is a wgmma variant and cuda:<paramref name="device"/> is not sm_90.</summary>
    /// <exception cref="NotSupportedException">The wgmma PTX targets sm_90a only.</exception>
    private static void RequireWgmmaDevice(int device, AttentionVariant variant)
    {
        if (variant.IsHopper() && CudaDriver.GetDeviceInfo(device) is var info && info.ComputeCapability != (9, 0))
            throw new NotSupportedException(
                $"options.Variant {variant} runs on sm_90 GPUs only (its wgmma PTX targets sm_90a); cuda:{device} is sm_{info.ComputeCapabilityMajor}{info.ComputeCapabilityMinor}.");
    }

    /// <summary>
    /// Launches <paramref name="kernel"/> (<see cref="HopperAttentionKernel.Run"/> or its packed form) on grid
    /// (⌈<paramref name="qTiles"/> / W⌉, Hq, <paramref name="batch"/>). wgmma needs the arch-specific sm_90a target; the
    /// kernel's copy engine reads Q, K and Vᵀ through <paramref name="tensorMaps"/>, which the host encodes and passes by
    /// value as a kernel parameter (the driver copies it with the launch).
    /// </summary>
    private void LaunchHopper(PtxTarget target, MethodInfo kernel, IntPtr stream, KernelArgs args, in AttentionParams attention,
        Dictionary<string, DeviceView> views, byte[] tensorMaps, int qTiles, int headsQ, int batch, int paddedHeadDim, SageAttentionOptions options)
    {
        int valueBytes = HopperAttentionKernel.ValueBytes(options.Variant);
        int groups = HopperAttentionKernel.WarpGroupsFor(qTiles,
            options.HopperWarpGroups != 0 ? options.HopperWarpGroups : HopperWarpGroupsOverride.Value, paddedHeadDim, valueBytes);
        int threads = groups * HopperAttentionKernel.Threads;
        var dims = new LaunchDimensions(HopperAttentionKernel.Blocks(qTiles, groups), headsQ, batch, threads, 1, 1,
            HopperAttentionKernel.SharedBytes(paddedHeadDim, groups, valueBytes));
        // .maxntid and .minnctapersm tell ptxas how many registers a thread may have (65536 / threads / blocks per SM), so
        // the block (or the pair of blocks) fits the SM.
        Launch(target with { ArchSpecific = true }, kernel, dims, stream,
            args.AddParameter(attention, views).AddBytes(tensorMaps, 8).Add(paddedHeadDim).Add(groups).Add(valueBytes),
            new KernelSpecialization(threads, HopperAttentionKernel.BlocksPerSm(groups)), [paddedHeadDim, groups, valueBytes]);
    }

    /// <summary>
    /// Launches <see cref="HopperAttentionKernel.RunWarpSpecialized"/> on grid (⌈<paramref name="qTiles"/> / 2⌉, Hq,
    /// <paramref name="batch"/>): blocks of a producer and two consumer warpgroups, one per SM (<c>.minnctapersm 1</c>, so
    /// ptxas starts every warpgroup at 168 registers and the kernel moves them with <c>setmaxnreg</c>).
    /// </summary>
    private void LaunchHopperWarpSpecialized(PtxTarget target, IntPtr stream, KernelArgs args, in AttentionParams attention,
        Dictionary<string, DeviceView> views, byte[] tensorMaps, int qTiles, int headsQ, int batch, int paddedHeadDim)
    {
        int threads = HopperAttentionKernel.SpecializedThreads;
        var dims = new LaunchDimensions(HopperAttentionKernel.Blocks(qTiles, HopperAttentionKernel.SpecializedConsumers), headsQ, batch, threads, 1, 1,
            HopperAttentionKernel.SpecializedSharedBytes(paddedHeadDim));
        Launch(target with { ArchSpecific = true }, HopperSpecializedAttention, dims, stream,
            args.AddParameter(attention, views).AddBytes(tensorMaps, 8).Add(paddedHeadDim),
            new KernelSpecialization(threads, 1), [paddedHeadDim]);
    }
}
