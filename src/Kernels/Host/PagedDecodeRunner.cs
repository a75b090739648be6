using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>The device buffers of one paged decode call on an ILGPU accelerator.</summary>
/// <param name="Q">Queries [B, Hq, D] (fp16/bf16 bits), channels contiguous.</param>
/// <param name="QStrideBatch">Elements between requests of <paramref name="Q"/>.</param>
/// <param name="QStrideHead">Elements between heads of <paramref name="Q"/>.</param>
/// <param name="KCache">[NumBlocks, Hkv, BlockSize, D], contiguous, 16-byte aligned.</param>
/// <param name="VCache">Same layout as <paramref name="KCache"/>.</param>
/// <param name="BlockTables">[B, MaxBlocksPerSeq] int32.</param>
/// <param name="SeqLens">[B] int32: valid cached tokens per request, the new one included.</param>
/// <param name="Output">[B, Hq, D] in the cache's type.</param>
/// <param name="OutputStrideBatch">Elements between requests of <paramref name="Output"/>.</param>
/// <param name="OutputStrideHead">Elements between heads of <paramref name="Output"/>.</param>
/// <param name="Lse">Natural-log LSE [B, Hq], or an empty view for none.</param>
public readonly record struct PagedDecodeBuffers(
    ArrayView<ushort> Q, long QStrideBatch, long QStrideHead,
    ArrayView<ushort> KCache, ArrayView<ushort> VCache, ArrayView<int> BlockTables, ArrayView<int> SeqLens,
    ArrayView<ushort> Output, long OutputStrideBatch, long OutputStrideHead, ArrayView<float> Lse);

/// <summary>
/// Paged decode attention and attention-state merges on an ILGPU accelerator (the CPU accelerator in CI and for
/// CPU tensors, ILGPU's CUDA accelerator for kernel tests). Kernels are compiled once per runner.
/// </summary>
/// <remarks>Not thread-safe: one runner per accelerator stream. Calls return after the accelerator synchronized.</remarks>
public sealed class PagedDecodeRunner : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly Action<KernelConfig, PagedDecodeParams, SpecializedValue<int>, SpecializedValue<int>> _decode;
    private readonly Action<KernelConfig, AttentionStateMergeParams> _merge;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _unusedFloats;
    private readonly MemoryBuffer1D<ushort, Stride1D.Dense> _unusedHalves;

    /// <summary>Compiles the decode and merge kernels for <paramref name="accelerator"/>.</summary>
    public PagedDecodeRunner(Accelerator accelerator)
    {
        _accelerator = accelerator ?? throw new ArgumentNullException(nameof(accelerator));
        _decode = accelerator.LoadStreamKernel<PagedDecodeParams, SpecializedValue<int>, SpecializedValue<int>>(PagedDecodeKernel.Run);
        _merge = accelerator.LoadStreamKernel<AttentionStateMergeParams>(AttentionStateMergeKernel.Run);
        // Views a launch does not use still need a valid buffer behind them.
        _unusedFloats = accelerator.Allocate1D<float>(1);
        _unusedHalves = accelerator.Allocate1D<ushort>(1);
    }

    /// <summary>The accelerator the kernels run on.</summary>
    public Accelerator Accelerator => _accelerator;

    /// <summary>SMs of a CUDA accelerator; the CPU accelerator reports its processors (the split choice only needs a scale).</summary>
    public int Multiprocessors => Math.Max(1, _accelerator.NumMultiprocessors);

    /// <summary>
    /// Decode attention: O[b, h] = softmax(q[b, h] · Kᵀ · smScale) V over the first seq_lens[b] cached tokens of request b,
    /// K/V of kv head h / (Hq / Hkv). Splits the keys when that fills the device better (or as forced), then merges.
    /// </summary>
    /// <param name="forcedSplits">Null picks the split from the shape and the device; a value forces that many splits (tests).</param>
    /// <returns>The split that ran.</returns>
    /// <exception cref="ArgumentException">A buffer, stride or scale is invalid (names it).</exception>
    public PagedDecodeSplit Decode(in PagedDecodeBuffers buffers, PagedDecodeShape shape, TensorElementType elementType, float smScale,
        int? forcedSplits = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        shape.CheckBuffers(buffers.Q.Length, buffers.QStrideBatch, buffers.QStrideHead, buffers.KCache.Length, buffers.VCache.Length,
            buffers.BlockTables.Length, buffers.SeqLens.Length, buffers.Output.Length, buffers.OutputStrideBatch, buffers.OutputStrideHead,
            buffers.Lse.Length);
        CheckScale(smScale);
        var split = PagedDecodeSplit.Choose(shape, Multiprocessors, forcedSplits);
        bool writeLse = buffers.Lse.Length > 0;
        var layout = AttentionStateLayout.Contiguous(split.Splits, shape.Batch, shape.HeadsQ, 1, shape.HeadDim);
        MemoryBuffer1D<float, Stride1D.Dense>? partialO = null, partialLse = null;
        try
        {
            if (split.Splits > 1)
            {
                partialO = _accelerator.Allocate1D<float>(split.Splits * layout.Rows * shape.HeadDim);
                partialLse = _accelerator.Allocate1D<float>(split.Splits * layout.Rows);
            }
            var p = new PagedDecodeParams
            {
                Q = buffers.Q, KCache = buffers.KCache, VCache = buffers.VCache, BlockTables = buffers.BlockTables, SeqLens = buffers.SeqLens,
                O = buffers.Output, Lse = writeLse ? buffers.Lse : _unusedFloats.View,
                PartialO = partialO?.View ?? _unusedFloats.View, PartialLse = partialLse?.View ?? _unusedFloats.View,
                QStrideBatch = buffers.QStrideBatch, QStrideHead = buffers.QStrideHead,
                OStrideBatch = buffers.OutputStrideBatch, OStrideHead = buffers.OutputStrideHead,
                Batch = shape.Batch, HeadsQ = shape.HeadsQ, HeadsKv = shape.HeadsKv, NumBlocks = shape.NumBlocks,
                BlockSize = shape.BlockSize, BlockTableStride = shape.MaxBlocksPerSeq, MaxSeqLen = shape.MaxSeqLen,
                KeysPerSplit = split.KeysPerSplit, Splits = split.Splits,
                ScaleLog2 = smScale * SageConstants.Log2E, WriteLse = writeLse ? 1 : 0,
            };
            _decode(new KernelConfig(new Index3D(split.Splits, shape.HeadsKv, shape.Batch), new Index3D(PagedDecodeKernel.Threads, 1, 1),
                EmulationSharedMemory()), p, SpecializedValue.New(shape.HeadDim), SpecializedValue.New((int)elementType));
            if (partialO is not null && partialLse is not null)
            {
                var merge = MergeParams(layout, partialO.View, _unusedHalves.View, AttentionStateType.Float32, partialLse.View,
                    _unusedFloats.View, buffers.Output, (AttentionStateType)elementType, buffers.Lse) with
                {
                    OutStrideBatch = buffers.OutputStrideBatch, OutStrideHead = buffers.OutputStrideHead,
                };
                _merge(new KernelConfig(layout.GridBlocks, AttentionStateMergeKernel.Threads), merge);
            }
            _accelerator.Synchronize();
            return split;
        }
        finally
        {
            partialO?.Dispose();
            partialLse?.Dispose();
        }
    }

    /// <summary>
    /// Merges S partial states (<see cref="AttentionStateMergeKernel"/>): FP32 partials into an fp16/bf16 or FP32 output.
    /// </summary>
    /// <param name="layout">Sizes and strides of the partials and the output.</param>
    /// <param name="partials">Partial outputs (normalized), [S, B, H, N, D] through the layout's strides.</param>
    /// <param name="partialLse">Natural-log LSEs [S, B, H, N]; −∞ marks an empty partial.</param>
    /// <param name="output">Merged output through the layout's output strides.</param>
    /// <param name="outputType">Element type of <paramref name="output"/> (Float16/BFloat16 bits held as ushort).</param>
    /// <param name="lse">Merged natural-log LSE [B, H, N], or an empty view for none.</param>
    public void MergeStates(AttentionStateLayout layout, ArrayView<float> partials, ArrayView<float> partialLse,
        ArrayView<ushort> output, TensorElementType outputType, ArrayView<float> lse)
    {
        layout.Validate(partials.Length, partialLse.Length, output.Length, lse.Length);
        RunMerge(MergeParams(layout, partials, _unusedHalves.View, AttentionStateType.Float32, partialLse, _unusedFloats.View, output,
            (AttentionStateType)outputType, lse), layout);
    }

    /// <summary>Merges fp16/bf16 partials (e.g. outputs of separate attention calls over key chunks) into an output of the same type.</summary>
    /// <inheritdoc cref="MergeStates(AttentionStateLayout, ArrayView{float}, ArrayView{float}, ArrayView{ushort}, TensorElementType, ArrayView{float})"/>
    /// <param name="elementType">Type of both <paramref name="partials"/> and <paramref name="output"/>.</param>
    public void MergeStates(AttentionStateLayout layout, ArrayView<ushort> partials, ArrayView<float> partialLse,
        ArrayView<ushort> output, TensorElementType elementType, ArrayView<float> lse)
    {
        layout.Validate(partials.Length, partialLse.Length, output.Length, lse.Length);
        RunMerge(MergeParams(layout, _unusedFloats.View, partials, (AttentionStateType)elementType, partialLse, _unusedFloats.View, output,
            (AttentionStateType)elementType, lse), layout);
    }

    /// <summary>Merges FP32 partials into an FP32 output.</summary>
    /// <inheritdoc cref="MergeStates(AttentionStateLayout, ArrayView{float}, ArrayView{float}, ArrayView{ushort}, TensorElementType, ArrayView{float})"/>
    public void MergeStates(AttentionStateLayout layout, ArrayView<float> partials, ArrayView<float> partialLse,
        ArrayView<float> output, ArrayView<float> lse)
    {
        layout.Validate(partials.Length, partialLse.Length, output.Length, lse.Length);
        RunMerge(MergeParams(layout, partials, _unusedHalves.View, AttentionStateType.Float32, partialLse, output, _unusedHalves.View,
            AttentionStateType.Float32, lse), layout);
    }

    /// <summary>Frees the runner's placeholder buffers (the kernels are owned by the accelerator).</summary>
    public void Dispose()
    {
        _unusedFloats.Dispose();
        _unusedHalves.Dispose();
    }

    private void RunMerge(AttentionStateMergeParams p, AttentionStateLayout layout)
    {
        _merge(new KernelConfig(layout.GridBlocks, AttentionStateMergeKernel.Threads), p);
        _accelerator.Synchronize();
    }

    private AttentionStateMergeParams MergeParams(AttentionStateLayout layout, ArrayView<float> partialF32, ArrayView<ushort> partial16,
        AttentionStateType partialType, ArrayView<float> partialLse, ArrayView<float> outF32, ArrayView<ushort> out16,
        AttentionStateType outputType, ArrayView<float> lse)
    {
        bool writeLse = lse.Length > 0;
        var p = layout.ToParams(partialType, outputType, writeLse);
        p.PartialF32 = partialF32;
        p.Partial16 = partial16;
        p.PartialLse = partialLse;
        p.OutF32 = outF32;
        p.Out16 = out16;
        p.Lse = writeLse ? lse : _unusedFloats.View;
        return p;
    }

    internal static void CheckScale(float smScale)
    {
        if (!(smScale > 0) || float.IsInfinity(smScale))
            throw new ArgumentException($"sm_scale must be positive and finite, got {smScale}.", "sm_scale");
    }

    /// <summary>The CPU accelerator needs shared staging for the tensor-core emulation; CUDA needs none.</summary>
    private SharedMemoryConfig EmulationSharedMemory() =>
        _accelerator.AcceleratorType == AcceleratorType.CPU
            ? SharedMemoryConfig.RequestDynamic<uint>(Intrinsics.TensorCore.EmulationSharedWords)
            : default;
}
