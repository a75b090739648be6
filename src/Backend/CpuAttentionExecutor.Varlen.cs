using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>Packed (varlen) calls on CPU tensors: the packed kernels on the shared CPU accelerator.</summary>
internal static unsafe partial class CpuAttentionExecutor
{
    public static (Tensor Output, Tensor? Lse) RunVarlen(VarlenAttentionRequest request, SageAttentionOptions options, bool returnLse)
    {
        var shape = request.Shape!;
        lock (Gate)
        {
            var (_, accelerator, runner) = Shared.Value;
            using var q = UploadPacked(accelerator, request.Q, out var qView);
            using var k = UploadPacked(accelerator, request.K, out var kView);
            using var v = UploadPacked(accelerator, request.V, out var vView);
            using var cuQ = UploadOffsets(accelerator, request.CuSeqlensQ);
            using var cuK = UploadOffsets(accelerator, request.CuSeqlensK);
            long count = (long)shape.TotalQ * shape.HeadsQ * shape.HeadDim;
            using var o = accelerator.Allocate1D<ushort>(count);
            var oView = new StridedTensor(o.View, 1, shape.HeadsQ, shape.TotalQ, shape.HeadDim, 0, shape.HeadDim, (long)shape.HeadsQ * shape.HeadDim);
            long rows = (long)shape.HeadsQ * shape.TotalQ;
            using var lse = accelerator.Allocate1D<float>(returnLse ? rows : 1);
            runner.RunVarlen(qView, kView, vView, oView, cuQ.View, cuK.View, shape.MaxQ, shape.MaxK, request.ElementType,
                request.SmScale, request.Causal, returnLse ? lse.View : default, options);

            var output = torch.empty([shape.TotalQ, shape.HeadsQ, shape.HeadDim], request.DType);
            ((ArrayView<ushort>)o.View).CopyToCPU(new Span<ushort>((void*)TorchInterop.DataPointer(output), checked((int)count)));
            Tensor? lseTensor = null;
            if (returnLse)
            {
                lseTensor = torch.empty([shape.HeadsQ, shape.TotalQ], ScalarType.Float32);
                ((ArrayView<float>)lse.View).CopyToCPU(new Span<float>((void*)TorchInterop.DataPointer(lseTensor), checked((int)rows)));
            }
            return (output, lseTensor);
        }
    }

    private static MemoryBuffer1D<ushort, Stride1D.Dense> UploadPacked(Accelerator accelerator, Tensor t, out StridedTensor view)
    {
        long extent = AttentionRequest.Extent(t);
        var buffer = accelerator.Allocate1D<ushort>(extent);
        ((ArrayView<ushort>)buffer.View).CopyFromCPU(new ReadOnlySpan<ushort>((void*)TorchInterop.DataPointer(t), checked((int)extent)));
        var (heads, tokens, headDim, strideHead, strideToken) = VarlenAttentionRequest.Packed(t);
        view = new StridedTensor(buffer.View, 1, heads, tokens, headDim, 0, strideHead, strideToken);
        return buffer;
    }

    private static MemoryBuffer1D<int, Stride1D.Dense> UploadOffsets(Accelerator accelerator, Tensor cu)
    {
        var buffer = accelerator.Allocate1D<int>(cu.shape[0]);
        ((ArrayView<int>)buffer.View).CopyFromCPU(new ReadOnlySpan<int>((void*)TorchInterop.DataPointer(cu), checked((int)cu.shape[0])));
        return buffer;
    }
}
