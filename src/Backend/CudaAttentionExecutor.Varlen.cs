using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>Packed (varlen) calls on CUDA tensors: zero copy, cu_seqlens left on the device, no synchronize.</summary>
internal static partial class CudaAttentionExecutor
{
    public static (Tensor Output, Tensor? Lse) RunVarlen(VarlenAttentionRequest request, SageAttentionSettings settings, bool returnLse)
    {
        int device = request.Device.index < 0 ? 0 : request.Device.index;
        var info = CudaDriver.GetDeviceInfo(device);
        var options = settings.Resolve(info.ComputeCapability, packed: true);
        var shape = request.Shape!;
        var layout = shape.Layout(options);
        var (scratch, quantized, correction) = AllocateScratch(layout, returnLse && options.SmoothK, request.Device);
        try
        {
            var output = torch.empty([shape.TotalQ, shape.HeadsQ, shape.HeadDim], request.DType, request.Device);
            Tensor? lse = returnLse ? torch.empty([shape.HeadsQ, shape.TotalQ], ScalarType.Float32, request.Device) : null;
            var lseView = lse is null ? default : new DeviceView(TorchInterop.DataPointer(lse), layout.LseRows);
            var stream = TorchInterop.CurrentCudaStream(device);
            Pipeline.Value.EnqueueVarlen(device, stream, DescribePacked(request.Q), DescribePacked(request.K), DescribePacked(request.V),
                DescribePacked(output), Offsets(request.CuSeqlensQ), Offsets(request.CuSeqlensK), shape.MaxQ, shape.MaxK,
                request.ElementType, request.SmScale, request.Causal, options, quantized, lseView, correction);
            GC.KeepAlive(request);
            return (output, lse);
        }
        finally
        {
            scratch.Dispose();
        }
    }

    private static DeviceTensor DescribePacked(Tensor t)
    {
        var (heads, tokens, headDim, strideHead, strideToken) = VarlenAttentionRequest.Packed(t);
        return new DeviceTensor(TorchInterop.DataPointer(t), AttentionRequest.Extent(t), 1, heads, tokens, headDim, 0, strideHead, strideToken);
    }

    private static DeviceView Offsets(Tensor cu) => new(TorchInterop.DataPointer(cu), cu.shape[0]);
}
