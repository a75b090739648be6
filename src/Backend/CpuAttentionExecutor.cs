using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// Runs attention on CPU tensors with the same ILGPU kernels on ILGPU's CPU accelerator (slow: every
/// simulated GPU thread is an OS thread; meant for tests, CI and demos).
/// </summary>
/// <remarks>
/// The accelerator is created lazily once per process and shared; calls are serialized because
/// <see cref="SageAttentionRunner"/> is not thread-safe. Inputs are copied into accelerator buffers and the
/// output back into a new torch tensor (the CPU accelerator owns its memory; the copies are small next to
/// the simulated kernels). Strided inputs keep their strides, so NHD is read in place.
/// </remarks>
internal static unsafe partial class CpuAttentionExecutor
{
    private static readonly Lazy<(Context Context, Accelerator Accelerator, SageAttentionRunner Runner)> Shared = new(() =>
    {
        var context = AcceleratorFactory.CreateContext(includeCuda: false);
        var accelerator = AcceleratorFactory.CreateCpu(context);
        return (context, accelerator, new SageAttentionRunner(accelerator));
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly object Gate = new();

    /// <summary>The shared CPU accelerator's name (for <c>sageattn info</c>); creates it if needed.</summary>
    public static string AcceleratorName => Shared.Value.Accelerator.Name;

    public static (Tensor Output, Tensor? Lse) Run(AttentionRequest request, SageAttentionOptions options, bool returnLse)
    {
        var shape = request.Shape;
        lock (Gate)
        {
            var (_, accelerator, runner) = Shared.Value;
            using var q = Upload(accelerator, request.Q, request.Nhd, out var qView);
            using var k = Upload(accelerator, request.K, request.Nhd, out var kView);
            using var v = Upload(accelerator, request.V, request.Nhd, out var vView);
            var sizes = request.OutputSizes;
            long count = sizes.Aggregate(1L, (a, b) => a * b);
            using var o = accelerator.Allocate1D<ushort>(count);
            var oView = request.Nhd
                ? new StridedTensor(o.View, shape.Batch, shape.HeadsQ, shape.Nq, shape.HeadDim,
                    (long)shape.Nq * shape.HeadsQ * shape.HeadDim, shape.HeadDim, (long)shape.HeadsQ * shape.HeadDim)
                : new StridedTensor(o.View, shape.Batch, shape.HeadsQ, shape.Nq, shape.HeadDim,
                    (long)shape.HeadsQ * shape.Nq * shape.HeadDim, (long)shape.Nq * shape.HeadDim, shape.HeadDim);
            long rows = (long)shape.Batch * shape.HeadsQ * shape.Nq;
            using var lse = accelerator.Allocate1D<float>(returnLse ? rows : 1);
            runner.Run(qView, kView, vView, oView, request.ElementType, request.SmScale, request.Causal, request.CausalOffset,
                returnLse ? lse.View : default, options);

            var output = torch.empty(sizes, request.DType);
            ((ArrayView<ushort>)o.View).CopyToCPU(new Span<ushort>((void*)TorchInterop.DataPointer(output), checked((int)count)));
            Tensor? lseTensor = null;
            if (returnLse)
            {
                lseTensor = torch.empty([shape.Batch, shape.HeadsQ, shape.Nq], ScalarType.Float32);
                ((ArrayView<float>)lse.View).CopyToCPU(new Span<float>((void*)TorchInterop.DataPointer(lseTensor), checked((int)rows)));
            }

            return (output, lseTensor);
        }
    }

    private static MemoryBuffer1D<ushort, Stride1D.Dense> Upload(Accelerator accelerator, Tensor t, bool nhd, out StridedTensor view)
    {
        long extent = AttentionRequest.Extent(t);
        var buffer = accelerator.Allocate1D<ushort>(extent);
        ((ArrayView<ushort>)buffer.View).CopyFromCPU(new ReadOnlySpan<ushort>((void*)TorchInterop.DataPointer(t), checked((int)extent)));
        var (b, h, n, d) = AttentionRequest.Dims(t, nhd);
        var (sb, sh, sn) = AttentionRequest.Strides(t, nhd);
        view = new StridedTensor(buffer.View, (int)b, (int)h, (int)n, (int)d, sb, sh, sn);
        return buffer;
    }
}
