using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// Runs attention on CUDA tensors with no copy and no synchronize: raw pointers from libtorch, output and
/// scratch allocated as torch tensors (libtorch's caching allocator), every kernel enqueued on libtorch's
/// current stream of the tensors' device through <see cref="CudaSageAttention"/>.
/// </summary>
/// <remarks>
/// The scratch tensors are disposed right after the launches are enqueued: the caching allocator only hands
/// their blocks to later work on the same stream, which the stream orders after our kernels (the pattern
/// PyTorch itself relies on). The inputs are held until the same point by the caller's references and
/// <see cref="GC.KeepAlive"/>.
/// </remarks>
internal static partial class CudaAttentionExecutor
{
    private static readonly Lazy<CudaSageAttention> Pipeline = new(() => new CudaSageAttention(), LazyThreadSafetyMode.ExecutionAndPublication);

    public static (Tensor Output, Tensor? Lse) Run(AttentionRequest request, SageAttentionSettings settings, bool returnLse)
    {
        int device = request.Device.index < 0 ? 0 : request.Device.index;
        var info = CudaDriver.GetDeviceInfo(device);
        var options = settings.Resolve(info.ComputeCapability);
        var shape = request.Shape;
        var layout = QuantizedLayout.For(shape, options);
        var scratch = new List<Tensor>();
        try
        {
            IntPtr Allocate(string name, long bytes)
            {
                var t = torch.empty([bytes], ScalarType.Byte, request.Device);
                scratch.Add(t);
                return TorchInterop.DataPointer(t);
            }

            var quantized = QuantizedScratch.Allocate(layout, Allocate);
            var output = torch.empty(request.OutputSizes, request.DType, request.Device);
            Tensor? lse = returnLse ? torch.empty([shape.Batch, shape.HeadsQ, shape.Nq], ScalarType.Float32, request.Device) : null;
            var lseView = lse is null ? default : new DeviceView(TorchInterop.DataPointer(lse), layout.LseRows);
            var correction = returnLse && options.SmoothK
                ? new DeviceView(Allocate("LseCorrection", layout.LseRows * sizeof(float)), layout.LseRows)
                : default;
            var stream = TorchInterop.CurrentCudaStream(device);
            Pipeline.Value.Enqueue(device, stream, Describe(request.Q, request.Nhd), Describe(request.K, request.Nhd),
                Describe(request.V, request.Nhd), Describe(output, request.Nhd), request.ElementType, request.SmScale,
                request.Causal, request.CausalOffset, options, quantized, lseView, correction);
            GC.KeepAlive(request);
            return (output, lse);
        }
        finally
        {
            foreach (var t in scratch)
                t.Dispose();
        }
    }

    private static DeviceTensor Describe(Tensor t, bool nhd)
    {
        var (b, h, n, d) = AttentionRequest.Dims(t, nhd);
        var (sb, sh, sn) = AttentionRequest.Strides(t, nhd);
        return new DeviceTensor(TorchInterop.DataPointer(t), AttentionRequest.Extent(t), (int)b, (int)h, (int)n, (int)d, sb, sh, sn);
    }
}
