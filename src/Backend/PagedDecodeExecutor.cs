using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// Runs paged decode and attention-state merges for TorchSharp tensors: CUDA tensors through <see cref="CudaPagedDecode"/>
/// on libtorch's stream with no copy and no synchronize; CPU tensors on a shared ILGPU CPU accelerator.
/// </summary>
/// <remarks>
/// CUDA scratch (the split partials) is allocated with <c>torch.empty</c> and disposed right after the launches are
/// enqueued: the caching allocator hands those blocks only to later work on the same stream (as in
/// <see cref="CudaAttentionExecutor"/>). The CPU accelerator is created lazily once per process; calls are serialized.
/// </remarks>
internal static unsafe class PagedDecodeExecutor
{
    private static readonly Lazy<CudaPagedDecode> Pipeline = new(() => new CudaPagedDecode(), LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly Lazy<(Context Context, Accelerator Accelerator, PagedDecodeRunner Runner)> Cpu = new(() =>
    {
        var context = AcceleratorFactory.CreateContext(includeCuda: false);
        var accelerator = AcceleratorFactory.CreateCpu(context);
        return (context, accelerator, new PagedDecodeRunner(accelerator));
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly object CpuGate = new();

    public static (Tensor Output, Tensor? Lse) RunCuda(PagedDecodeRequest request, bool returnLse)
    {
        var shape = request.Shape;
        var device = request.Q.device;
        int ordinal = device.index < 0 ? 0 : device.index;
        var pipeline = Pipeline.Value;
        var split = pipeline.Plan(ordinal, shape, request.Splits);
        var (partialFloats, lseFloats) = CudaPagedDecode.ScratchFloats(shape, split);
        using var partialO = partialFloats > 0 ? torch.empty([partialFloats], ScalarType.Float32, device) : null;
        using var partialLse = lseFloats > 0 ? torch.empty([lseFloats], ScalarType.Float32, device) : null;
        var output = request.Output ?? torch.empty([shape.Batch, shape.HeadsQ, shape.HeadDim], request.DType, device);
        var lse = returnLse ? torch.empty([shape.Batch, shape.HeadsQ], ScalarType.Float32, device) : null;
        var q = request.Q;
        var buffers = new PagedDecodeDeviceBuffers(
            RowsView(q, shape), q.stride(0), q.stride(1),
            View(request.KCache), View(request.VCache), View(request.BlockTables), View(request.SeqLens),
            RowsView(output, shape), output.stride(0), output.stride(1), lse is null ? default : View(lse));
        pipeline.Enqueue(ordinal, TorchInterop.CurrentCudaStream(ordinal), buffers, shape, split, request.ElementType, request.SmScale,
            partialO is null ? default : View(partialO), partialLse is null ? default : View(partialLse));
        GC.KeepAlive(request);
        return (output, lse);
    }

    public static (Tensor Output, Tensor? Lse) RunCpu(PagedDecodeRequest request, bool returnLse)
    {
        var shape = request.Shape;
        lock (CpuGate)
        {
            var (_, accelerator, runner) = Cpu.Value;
            using var qContiguous = request.Q.contiguous();
            using var q = Upload<ushort>(accelerator, qContiguous);
            using var k = Upload<ushort>(accelerator, request.KCache);
            using var v = Upload<ushort>(accelerator, request.VCache);
            using var tables = Upload<int>(accelerator, request.BlockTables);
            using var lens = Upload<int>(accelerator, request.SeqLens);
            long rows = (long)shape.Batch * shape.HeadsQ;
            using var o = accelerator.Allocate1D<ushort>(rows * shape.HeadDim);
            using var lse = accelerator.Allocate1D<float>(returnLse ? rows : 1);
            long rowStride = (long)shape.HeadsQ * shape.HeadDim;
            var buffers = new PagedDecodeBuffers(q.View, rowStride, shape.HeadDim, k.View, v.View, tables.View, lens.View,
                o.View, rowStride, shape.HeadDim, returnLse ? lse.View : default);
            runner.Decode(buffers, shape, request.ElementType, request.SmScale, request.Splits);

            var output = torch.empty([shape.Batch, shape.HeadsQ, shape.HeadDim], request.DType);
            Download<ushort>(o.View, output);
            if (request.Output is not null)
            {
                request.Output.copy_(output);
                output.Dispose();
                output = request.Output;
            }
            Tensor? lseTensor = null;
            if (returnLse)
            {
                lseTensor = torch.empty([shape.Batch, shape.HeadsQ], ScalarType.Float32);
                Download<float>(lse.View, lseTensor);
            }
            return (output, lseTensor);
        }
    }

    /// <summary>Merges stacked partial states on CUDA tensors (see <see cref="AttentionMerge"/>).</summary>
    public static void MergeCuda(AttentionStateLayout layout, Tensor partials, Tensor partialLse, Tensor output, Tensor? lse)
    {
        int ordinal = partials.device.index < 0 ? 0 : partials.device.index;
        Pipeline.Value.EnqueueMerge(ordinal, TorchInterop.CurrentCudaStream(ordinal), layout, View(partials), StateType(partials),
            View(partialLse), View(output), StateType(output), lse is null ? default : View(lse));
    }

    /// <summary>Merges stacked partial states on CPU tensors through the CPU accelerator.</summary>
    public static void MergeCpu(AttentionStateLayout layout, Tensor partials, Tensor partialLse, Tensor output, Tensor? lse)
    {
        lock (CpuGate)
        {
            var (_, accelerator, runner) = Cpu.Value;
            using var lseIn = Upload<float>(accelerator, partialLse);
            using var lseOut = accelerator.Allocate1D<float>(lse is null ? 1 : lse.numel());
            var lseView = lse is null ? default : lseOut.View;
            bool float32 = partials.dtype == ScalarType.Float32;
            if (float32)
            {
                using var p = Upload<float>(accelerator, partials);
                using var o = accelerator.Allocate1D<float>(output.numel());
                runner.MergeStates(layout, p.View, lseIn.View, o.View, lseView);
                Download<float>(o.View, output);
            }
            else
            {
                using var p = Upload<ushort>(accelerator, partials);
                using var o = accelerator.Allocate1D<ushort>(output.numel());
                runner.MergeStates(layout, p.View, lseIn.View, o.View, (Quantization.TensorElementType)StateType(partials), lseView);
                Download<ushort>(o.View, output);
            }
            if (lse is not null)
                Download<float>(lseOut.View, lse);
        }
    }

    private static Kernels.Attention.AttentionStateType StateType(Tensor t) => t.dtype switch
    {
        ScalarType.Float16 => Kernels.Attention.AttentionStateType.Float16,
        ScalarType.BFloat16 => Kernels.Attention.AttentionStateType.BFloat16,
        ScalarType.Float32 => Kernels.Attention.AttentionStateType.Float32,
        _ => throw new NotSupportedException($"attention states must be Float16, BFloat16 or Float32, got {t.dtype}."),
    };

    /// <summary>A [B, H, D] tensor's view: elements from [0, 0, 0] to the last one its batch and head strides reach.</summary>
    private static DeviceView RowsView(Tensor t, PagedDecodeShape shape) =>
        new(TorchInterop.DataPointer(t), (shape.Batch - 1) * t.stride(0) + (shape.HeadsQ - 1) * t.stride(1) + shape.HeadDim);

    /// <summary>A contiguous tensor's device view in elements.</summary>
    private static DeviceView View(Tensor t) => new(TorchInterop.DataPointer(t), t.numel());

    private static MemoryBuffer1D<T, Stride1D.Dense> Upload<T>(Accelerator accelerator, Tensor t)
        where T : unmanaged
    {
        long count = t.numel();
        var buffer = accelerator.Allocate1D<T>(Math.Max(count, 1));
        if (count > 0)
            ((ArrayView<T>)buffer.View).SubView(0, count).CopyFromCPU(new ReadOnlySpan<T>((void*)TorchInterop.DataPointer(t), checked((int)count)));
        return buffer;
    }

    private static void Download<T>(ArrayView<T> source, Tensor destination)
        where T : unmanaged
    {
        long count = destination.numel();
        source.SubView(0, count).CopyToCPU(new Span<T>((void*)TorchInterop.DataPointer(destination), checked((int)count)));
    }
}
