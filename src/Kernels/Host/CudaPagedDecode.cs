using System.Collections.Concurrent;
using System.Reflection;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>The device pointers of one paged decode call on the driver path (element counts, not bytes).</summary>
/// <param name="Q">Queries [B, Hq, D], channels contiguous.</param>
/// <param name="QStrideBatch">Elements between requests of <paramref name="Q"/>.</param>
/// <param name="QStrideHead">Elements between heads of <paramref name="Q"/>.</param>
/// <param name="KCache">[NumBlocks, Hkv, BlockSize, D], contiguous, 16-byte aligned.</param>
/// <param name="VCache">Same layout as <paramref name="KCache"/>.</param>
/// <param name="BlockTables">[B, MaxBlocksPerSeq] int32.</param>
/// <param name="SeqLens">[B] int32.</param>
/// <param name="Output">[B, Hq, D] in the cache's type.</param>
/// <param name="OutputStrideBatch">Elements between requests of <paramref name="Output"/>.</param>
/// <param name="OutputStrideHead">Elements between heads of <paramref name="Output"/>.</param>
/// <param name="Lse">Natural-log LSE [B, Hq] floats, or a zero-length view for none.</param>
public readonly record struct PagedDecodeDeviceBuffers(
    DeviceView Q, long QStrideBatch, long QStrideHead, DeviceView KCache, DeviceView VCache, DeviceView BlockTables,
    DeviceView SeqLens, DeviceView Output, long OutputStrideBatch, long OutputStrideHead, DeviceView Lse);

/// <summary>
/// Paged decode attention and attention-state merges through the CUDA driver API on a caller's stream in the current
/// device's primary context (libtorch's): PTX compiled offline by <see cref="PtxCompiler"/>, no synchronize, scratch from
/// the caller. Launch configurations mirror <see cref="PagedDecodeRunner"/>.
/// </summary>
/// <remarks>Thread safety: concurrent calls are allowed; each builds its own launch arguments.</remarks>
public sealed class CudaPagedDecode : IDisposable
{
    private static readonly MethodInfo Decode = typeof(PagedDecodeKernel).GetMethod(nameof(PagedDecodeKernel.Run))!;
    private static readonly MethodInfo Merge = typeof(AttentionStateMergeKernel).GetMethod(nameof(AttentionStateMergeKernel.Run))!;

    private readonly CudaKernelLauncher _launcher = new();
    private readonly ConcurrentDictionary<int, (PtxTarget Target, int Multiprocessors)> _devices = new();

    /// <summary>
    /// The split a call of this shape gets on <paramref name="device"/> (from its SM count), or the forced one.
    /// The caller sizes the scratch with <see cref="ScratchFloats"/> from it.
    /// </summary>
    public PagedDecodeSplit Plan(int device, PagedDecodeShape shape, int? forcedSplits = null) =>
        PagedDecodeSplit.Choose(shape, DeviceFacts(device).Multiprocessors, forcedSplits);

    /// <summary>FP32 scratch for the partial outputs [S, B, Hq, D] and LSEs [S, B, Hq]; zero without a split.</summary>
    public static (long PartialOutput, long PartialLse) ScratchFloats(PagedDecodeShape shape, PagedDecodeSplit split)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (split.Splits <= 1)
            return (0, 0);
        long rows = (long)split.Splits * shape.Batch * shape.HeadsQ;
        return (rows * shape.HeadDim, rows);
    }

    /// <summary>
    /// Enqueues the decode kernel (and, with a split, the merge) on <paramref name="stream"/> and returns without waiting.
    /// </summary>
    /// <param name="device">CUDA ordinal the pointers live on.</param>
    /// <param name="split">From <see cref="Plan"/>.</param>
    /// <param name="partialOutput">Scratch of <see cref="ScratchFloats"/>.PartialOutput floats (unused without a split).</param>
    /// <param name="partialLse">Scratch of <see cref="ScratchFloats"/>.PartialLse floats (unused without a split).</param>
    /// <exception cref="ArgumentException">A buffer, stride, alignment, scale or the scratch is invalid (names it).</exception>
    /// <exception cref="NotSupportedException">The device is older than sm_80 (no m16n8k16 bf16/f16 mma with FP32 accumulation).</exception>
    /// <exception cref="CudaException">A driver call failed (names the kernel and launch configuration).</exception>
    public void Enqueue(int device, IntPtr stream, in PagedDecodeDeviceBuffers buffers, PagedDecodeShape shape, PagedDecodeSplit split,
        TensorElementType elementType, float smScale, DeviceView partialOutput, DeviceView partialLse)
    {
        ArgumentNullException.ThrowIfNull(shape);
        shape.CheckBuffers(buffers.Q.Length, buffers.QStrideBatch, buffers.QStrideHead, buffers.KCache.Length, buffers.VCache.Length,
            buffers.BlockTables.Length, buffers.SeqLens.Length, buffers.Output.Length, buffers.OutputStrideBatch, buffers.OutputStrideHead,
            buffers.Lse.Length);
        PagedDecodeRunner.CheckScale(smScale);
        CheckPointer(buffers.Q, "q");
        CheckPointer(buffers.BlockTables, "block_tables");
        CheckPointer(buffers.SeqLens, "seq_lens");
        CheckPointer(buffers.Output, "output");
        // The kernel reads cache rows as 16-byte vectors.
        CheckPointer(buffers.KCache, "k_cache", 16);
        CheckPointer(buffers.VCache, "v_cache", 16);
        if (split.Splits < 1 || split.KeysPerSplit < 1 || split.KeysPerSplit % PagedDecodeKernel.KeysPerStep != 0
            || (long)split.Splits * split.KeysPerSplit < shape.MaxSeqLen)
            throw new ArgumentException(
                $"split {split} does not cover max_seq_len {shape.MaxSeqLen} in multiples of {PagedDecodeKernel.KeysPerStep} keys; use Plan.", nameof(split));
        var (partialFloats, lseFloats) = ScratchFloats(shape, split);
        if (split.Splits > 1)
        {
            if (partialOutput.Pointer == IntPtr.Zero || partialOutput.Length < partialFloats)
                throw new ArgumentException($"partialOutput needs {partialFloats} floats, has {partialOutput.Length}.", nameof(partialOutput));
            if (partialLse.Pointer == IntPtr.Zero || partialLse.Length < lseFloats)
                throw new ArgumentException($"partialLse needs {lseFloats} floats, has {partialLse.Length}.", nameof(partialLse));
        }

        using var binding = PrimaryContextBinding.Bind(device);
        var target = Target(device);
        using var args = new KernelArgs();
        Launch(target, Decode, new LaunchDimensions(split.Splits, shape.HeadsKv, shape.Batch, PagedDecodeKernel.Threads, 1, 1), stream,
            AddDecodeArguments(args, buffers, shape, split, elementType, smScale, partialOutput, partialLse), shape.HeadDim, (int)elementType);
        if (split.Splits > 1)
        {
            var layout = AttentionStateLayout.Contiguous(split.Splits, shape.Batch, shape.HeadsQ, 1, shape.HeadDim) with
            {
                OutStrideBatch = buffers.OutputStrideBatch, OutStrideHead = buffers.OutputStrideHead,
            };
            EnqueueMergeUnchecked(target, stream, layout, partialOutput, AttentionStateType.Float32, partialLse, buffers.Output,
                (AttentionStateType)elementType, buffers.Lse);
        }
    }

    /// <summary>
    /// Enqueues a merge of S partial states (<see cref="AttentionStateMergeKernel"/>) and returns without waiting.
    /// </summary>
    /// <param name="layout">Sizes and strides of partials and output.</param>
    /// <param name="partials">Partial outputs, element type <paramref name="partialType"/>.</param>
    /// <param name="partialLse">Natural-log LSEs [S, B, H, N] floats; −∞ marks an empty partial.</param>
    /// <param name="output">Merged output, element type <paramref name="outputType"/>.</param>
    /// <param name="lse">Merged natural-log LSE [B, H, N] floats, or a zero-length view for none.</param>
    /// <exception cref="ArgumentException">Sizes, strides or buffers are invalid (names them).</exception>
    public void EnqueueMerge(int device, IntPtr stream, AttentionStateLayout layout, DeviceView partials, AttentionStateType partialType,
        DeviceView partialLse, DeviceView output, AttentionStateType outputType, DeviceView lse)
    {
        layout.Validate(partials.Length, partialLse.Length, output.Length, lse.Length);
        CheckPointer(partials, nameof(partials));
        CheckPointer(partialLse, nameof(partialLse));
        CheckPointer(output, nameof(output));
        using var binding = PrimaryContextBinding.Bind(device);
        EnqueueMergeUnchecked(Target(device), stream, layout, partials, partialType, partialLse, output, outputType, lse);
    }

    /// <summary>Unloads the cached modules (only when no launch is in flight).</summary>
    public void Dispose() => _launcher.Dispose();

    private void EnqueueMergeUnchecked(PtxTarget target, IntPtr stream, AttentionStateLayout layout, DeviceView partials,
        AttentionStateType partialType, DeviceView partialLse, DeviceView output, AttentionStateType outputType, DeviceView lse)
    {
        using var args = new KernelArgs();
        Launch(target, Merge, LaunchDimensions.Linear(layout.GridBlocks, AttentionStateMergeKernel.Threads), stream,
            AddMergeArguments(args, layout, partials, partialType, partialLse, output, outputType, lse));
    }

    /// <summary>
    /// Appends the decode kernel's launch parameters (its <see cref="PagedDecodeParams"/> image and both specialized slots) to
    /// <paramref name="args"/>; no validation. Public so the serialization can be checked against the PTX without a GPU.
    /// </summary>
    public static KernelArgs AddDecodeArguments(KernelArgs args, in PagedDecodeDeviceBuffers buffers, PagedDecodeShape shape,
        PagedDecodeSplit split, TensorElementType elementType, float smScale, DeviceView partialOutput, DeviceView partialLse)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(shape);
        bool writeLse = buffers.Lse.Length > 0;
        var p = new PagedDecodeParams
        {
            QStrideBatch = buffers.QStrideBatch, QStrideHead = buffers.QStrideHead,
            OStrideBatch = buffers.OutputStrideBatch, OStrideHead = buffers.OutputStrideHead,
            Batch = shape.Batch, HeadsQ = shape.HeadsQ, HeadsKv = shape.HeadsKv, NumBlocks = shape.NumBlocks,
            BlockSize = shape.BlockSize, BlockTableStride = shape.MaxBlocksPerSeq, MaxSeqLen = shape.MaxSeqLen,
            KeysPerSplit = split.KeysPerSplit, Splits = split.Splits,
            ScaleLog2 = smScale * SageConstants.Log2E, WriteLse = writeLse ? 1 : 0,
        };
        // Views the launch does not use still need a valid address: they point at seq_lens and are never touched.
        var unused = buffers.SeqLens;
        var views = new Dictionary<string, DeviceView>
        {
            ["Q"] = buffers.Q, ["KCache"] = buffers.KCache, ["VCache"] = buffers.VCache, ["BlockTables"] = buffers.BlockTables,
            ["SeqLens"] = buffers.SeqLens, ["O"] = buffers.Output, ["Lse"] = writeLse ? buffers.Lse : unused,
            ["PartialO"] = split.Splits > 1 ? partialOutput : unused, ["PartialLse"] = split.Splits > 1 ? partialLse : unused,
        };
        return args.AddParameter(p, views).Add(shape.HeadDim).Add((int)elementType);
    }

    /// <summary>Appends the merge kernel's launch parameter to <paramref name="args"/>; no validation (see <see cref="AddDecodeArguments"/>).</summary>
    public static KernelArgs AddMergeArguments(KernelArgs args, AttentionStateLayout layout, DeviceView partials, AttentionStateType partialType,
        DeviceView partialLse, DeviceView output, AttentionStateType outputType, DeviceView lse)
    {
        ArgumentNullException.ThrowIfNull(args);
        bool writeLse = lse.Length > 0;
        // Only the view of the element type in use is touched; the other carries the same address.
        var views = new Dictionary<string, DeviceView>
        {
            ["PartialF32"] = partials, ["Partial16"] = partials, ["PartialLse"] = partialLse,
            ["OutF32"] = output, ["Out16"] = output, ["Lse"] = writeLse ? lse : partialLse,
        };
        return args.AddParameter(layout.ToParams(partialType, outputType, writeLse), views);
    }

    private (PtxTarget Target, int Multiprocessors) DeviceFacts(int device) => _devices.GetOrAdd(device, d =>
    {
        var info = CudaDriver.GetDeviceInfo(d);
        var target = CudaSageAttention.TargetFor(info.ComputeCapability, CudaDriver.DriverVersion());
        return (target, info.MultiprocessorCount);
    });

    private PtxTarget Target(int device)
    {
        var target = DeviceFacts(device).Target;
        if (target.Architecture < CudaArchitecture.SM_80)
            throw new NotSupportedException($"paged decode needs m16n8k16 f16/bf16 tensor cores (sm_80 or newer); cuda:{device} is {target.TargetName}.");
        return target;
    }

    private void Launch(PtxTarget target, MethodInfo kernel, LaunchDimensions dims, IntPtr stream, KernelArgs args, params object[] specialized)
    {
        var ptx = _launcher.Compiler.Compile(kernel, target, specialized);
        _launcher.Launch(_launcher.Load(ptx), dims, args, stream);
        args.Clear();
    }

    private static void CheckPointer(DeviceView view, string name, int alignment = 1)
    {
        if (view.Pointer == IntPtr.Zero)
            throw new ArgumentException("device pointer is null.", name);
        if (view.Pointer % alignment != 0)
            throw new ArgumentException($"must be {alignment}-byte aligned (the kernel reads it in {alignment}-byte vectors); address 0x{view.Pointer:x}.", name);
    }
}
