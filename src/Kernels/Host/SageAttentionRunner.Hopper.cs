using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Intrinsics;

namespace SageAttn.Kernels.Host;

/// <summary>The launch of <see cref="HopperAttentionKernel"/> on ILGPU accelerators.</summary>
public sealed partial class SageAttentionRunner
{
    private Action<KernelConfig, AttentionParams, TensorMapParameter, SpecializedValue<int>, SpecializedValue<int>, SpecializedValue<int>>? _hopperAttention;

    /// <summary>
    /// Runs the wgmma kernel. Only the CPU accelerator (the emulation, for tests) can: its PTX needs the
    /// sm_90a target, which ILGPU's CUDA accelerator cannot emit; CUDA uses <see cref="CudaSageAttention"/>.
    /// </summary>
    private void LaunchHopper(AttentionShape shape, AttentionParams p, SageAttentionOptions options)
    {
        if (_accelerator.AcceleratorType != AcceleratorType.CPU)
            throw new NotSupportedException(
                $"{options.Variant} needs PTX for sm_90a, which ILGPU's {_accelerator.AcceleratorType} accelerator cannot load; " +
                $"use {nameof(CudaSageAttention)} (the TorchSharp path) on an sm_90 device.");
        // Loaded on first use so CUDA runners never compile it.
        _hopperAttention ??= _accelerator.LoadStreamKernel<AttentionParams, TensorMapParameter, SpecializedValue<int>, SpecializedValue<int>, SpecializedValue<int>>(
            HopperAttentionKernel.Run);
        // The CPU emulation copies through the views, so the tensor maps stay empty.
        int valueBytes = HopperAttentionKernel.ValueBytes(options.Variant);
        int groups = HopperAttentionKernel.WarpGroupsFor(shape.QTiles, options.HopperWarpGroups, shape.PaddedHeadDim, valueBytes);
        // The emulation's staging area holds MaxWarps warps; a larger block would stage past its end.
        if (groups * HopperAttentionKernel.Threads / 32 > WarpGroupMma.MaxWarps)
            throw new InvalidOperationException($"the wgmma emulation stages at most {WarpGroupMma.MaxWarps} warps; {groups} warpgroups need more.");
        int sharedBytes = HopperAttentionKernel.SharedBytes(shape.PaddedHeadDim, groups, valueBytes) + WarpGroupMma.EmulationSharedBytes;
        _hopperAttention(new KernelConfig(new Index3D(HopperAttentionKernel.Blocks(shape.QTiles, groups), shape.HeadsQ, shape.Batch),
            new Index3D(groups * HopperAttentionKernel.Threads, 1, 1), SharedMemoryConfig.RequestDynamic<byte>(sharedBytes)),
            p, default(TensorMapParameter), SpecializedValue.New(shape.PaddedHeadDim), SpecializedValue.New(groups), SpecializedValue.New(valueBytes));
    }
}
