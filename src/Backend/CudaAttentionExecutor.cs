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
/// The scratch tensor is disposed right after the launches are enqueued: the caching allocator only hands
/// its block to later work on the same stream, which the stream orders after our kernels (the pattern
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
        var (scratch, quantized, correction) = AllocateScratch(layout, returnLse && options.SmoothK, request.Device);
        try
        {
            var output = torch.empty(request.OutputSizes, request.DType, request.Device);
            Tensor? lse = returnLse ? torch.empty([shape.Batch, shape.HeadsQ, shape.Nq], ScalarType.Float32, request.Device) : null;
            var lseView = lse is null ? default : new DeviceView(TorchInterop.DataPointer(lse), layout.LseRows);
            var stream = TorchInterop.CurrentCudaStream(device);
            Pipeline.Value.Enqueue(device, stream, Describe(request.Q, request.Nhd), Describe(request.K, request.Nhd),
                Describe(request.V, request.Nhd), Describe(output, request.Nhd), request.ElementType, request.SmScale,
                request.Causal, request.CausalOffset, options, quantized, lseView, correction);
            GC.KeepAlive(request);
            return (output, lse);
        }
        finally
        {
            scratch.Dispose();
        }
    }

    /// <summary>
    /// One byte tensor holding every scratch buffer of <paramref name="layout"/> (<see cref="QuantizedScratch.Carve"/>) and,
    /// when asked, the LSE correction rows after them: one allocation from the caching allocator per call instead of eleven.
    /// </summary>
    private static (Tensor Scratch, QuantizedScratch Quantized, DeviceView Correction) AllocateScratch(QuantizedLayout layout,
        bool withCorrection, Device device)
    {
        long carved = QuantizedScratch.CarvedBytes(layout);
        var scratch = torch.empty([carved + (withCorrection ? layout.LseRows * sizeof(float) : 0)], ScalarType.Byte, device);
        try
        {
            var block = TorchInterop.DataPointer(scratch);
            var correction = withCorrection ? new DeviceView(block + (nint)carved, layout.LseRows) : default;
            return (scratch, QuantizedScratch.Carve(layout, block, carved), correction);
        }
        catch
        {
            scratch.Dispose();
            throw;
        }
    }

    private static DeviceTensor Describe(Tensor t, bool nhd)
    {
        // Sizes and strides read once: every read is a native call (15 per tensor through the one-dimension accessors).
        long[] sizes = t.shape, strides = t.stride();
        var (b, h, n, d) = AttentionRequest.Dims(sizes, nhd);
        var (sb, sh, sn) = AttentionRequest.Strides(strides, nhd);
        return new DeviceTensor(TorchInterop.DataPointer(t), AttentionRequest.Extent(sizes, strides), (int)b, (int)h, (int)n, (int)d, sb, sh, sn);
    }
}
