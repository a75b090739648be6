using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Intrinsics;

namespace SageAttn.Kernels.Host;

/// <summary>The launch of <see cref="HopperAttentionKernel"/> on ILGPU accelerators.</summary>
public sealed partial class SageAttentionRunner
{
    private Action<KernelConfig, AttentionParams, TensorMapParameter, SpecializedValue<int>, SpecializedValue<int>, SpecializedValue<int>>? _hopperAttention;
    private Action<KernelConfig, AttentionParams, TensorMapParameter, SpecializedValue<int>>? _hopperSpecializedAttention;
    private Action<KernelConfig, AttentionParams, TensorMapParameter, SpecializedValue<int>, SpecializedValue<int>, SpecializedValue<int>>? _hopperPackedAttention;

    /// <summary>
    /// Runs the wgmma kernel. Only the CPU accelerator (the emulation, for tests) can: its PTX needs the
    /// sm_90a target, which ILGPU's CUDA accelerator cannot emit; CUDA uses <see cref="CudaSageAttention"/>.
    /// </summary>
    private void LaunchHopper(AttentionShape shape, AttentionParams p, SageAttentionOptions options) =>
        LaunchHopper(shape.QTiles, shape.HeadsQ, shape.Batch, shape.PaddedHeadDim, p, options, packed: false);

    /// <summary>Runs the wgmma kernel's packed form (<see cref="HopperAttentionKernel.RunPacked"/>); CPU only, as <see cref="LaunchHopper(AttentionShape, AttentionParams, SageAttentionOptions)"/>.</summary>
    private void LaunchHopperPacked(VarlenShape shape, AttentionParams p, SageAttentionOptions options) =>
        LaunchHopper(shape.QTiles, shape.HeadsQ, shape.Batch, shape.PaddedHeadDim, p, options, packed: true);

    /// <param name="qTiles">64-row query tiles of a (batch, head), or of the longest packed sequence.</param>
    private void LaunchHopper(int qTiles, int headsQ, int batch, int paddedHeadDim, AttentionParams p, SageAttentionOptions options, bool packed)
    {
        if (_accelerator.AcceleratorType != AcceleratorType.CPU)
            throw new NotSupportedException(
                $"{options.Variant} needs PTX for sm_90a, which ILGPU's {_accelerator.AcceleratorType} accelerator cannot load; " +
                $"use {nameof(CudaSageAttention)} (the TorchSharp path) on an sm_90 device.");
        if (!packed && options.HopperWarpSpecialized && options.Variant == AttentionVariant.HopperQkInt8PvFp8)
        {
            LaunchHopperWarpSpecialized(qTiles, headsQ, batch, paddedHeadDim, p);
            return;
        }
        // Loaded on first use so CUDA runners never compile it.
        var kernel = packed
            ? _hopperPackedAttention ??= _accelerator.LoadStreamKernel<AttentionParams, TensorMapParameter, SpecializedValue<int>, SpecializedValue<int>,
                SpecializedValue<int>>(HopperAttentionKernel.RunPacked)
            : _hopperAttention ??= _accelerator.LoadStreamKernel<AttentionParams, TensorMapParameter, SpecializedValue<int>, SpecializedValue<int>,
                SpecializedValue<int>>(HopperAttentionKernel.Run);
        // The CPU emulation copies through the views, so the tensor maps stay empty.
        int valueBytes = HopperAttentionKernel.ValueBytes(options.Variant);
        int groups = HopperAttentionKernel.WarpGroupsFor(qTiles, options.HopperWarpGroups, paddedHeadDim, valueBytes);
        // The emulation's staging area holds MaxWarps warps; a larger block would stage past its end.
        if (groups * HopperAttentionKernel.Threads / 32 > WarpGroupMma.MaxWarps)
            throw new InvalidOperationException($"the wgmma emulation stages at most {WarpGroupMma.MaxWarps} warps; {groups} warpgroups need more.");
        int sharedBytes = HopperAttentionKernel.SharedBytes(paddedHeadDim, groups, valueBytes) + WarpGroupMma.EmulationSharedBytes;
        kernel(new KernelConfig(new Index3D(HopperAttentionKernel.Blocks(qTiles, groups), headsQ, batch),
            new Index3D(groups * HopperAttentionKernel.Threads, 1, 1), SharedMemoryConfig.RequestDynamic<byte>(sharedBytes)),
            p, default(TensorMapParameter), SpecializedValue.New(paddedHeadDim), SpecializedValue.New(groups), SpecializedValue.New(valueBytes));
    }

    /// <summary>Runs <see cref="HopperAttentionKernel.RunWarpSpecialized"/> (CPU only, as the other wgmma launches).</summary>
    private void LaunchHopperWarpSpecialized(int qTiles, int headsQ, int batch, int paddedHeadDim, AttentionParams p)
    {
        var kernel = _hopperSpecializedAttention ??= _accelerator.LoadStreamKernel<AttentionParams, TensorMapParameter, SpecializedValue<int>>(
            HopperAttentionKernel.RunWarpSpecialized);
        int sharedBytes = HopperAttentionKernel.SpecializedSharedBytes(paddedHeadDim) + WarpGroupMma.EmulationSharedBytes;
        kernel(new KernelConfig(new Index3D(HopperAttentionKernel.Blocks(qTiles, HopperAttentionKernel.SpecializedConsumers), headsQ, batch),
            new Index3D(HopperAttentionKernel.SpecializedThreads, 1, 1), SharedMemoryConfig.RequestDynamic<byte>(sharedBytes)),
            p, default(TensorMapParameter), SpecializedValue.New(paddedHeadDim));
    }
}
