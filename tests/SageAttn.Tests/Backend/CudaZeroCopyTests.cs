using SageAttn.Backend;
using SageAttn.Kernels.Runtime;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>The CUDA-only promises: zero copy, stream ordering without synchronize, stable memory in a model loop.</summary>
[Trait("gpu", "true")]
[Collection(DeviceMemoryCollection.Name)]
public sealed class CudaZeroCopyTests
{
    private static void RequireCuda()
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
    }

    [Fact]
    public void OutputIsATorchCudaAllocationTheKernelWroteInPlace()
    {
        RequireCuda();
        using var generator = new torch.Generator(3);
        using var q = TorchReference.Randn(generator, [1, 2, 256, 128], ScalarType.Float16, torch.CUDA);
        using var k = TorchReference.Randn(generator, [1, 2, 256, 128], ScalarType.Float16, torch.CUDA);
        using var v = TorchReference.Randn(generator, [1, 2, 256, 128], ScalarType.Float16, torch.CUDA);

        using var output = SageAttention.sageattn(q, k, v);
        // Read by a torch op right away, with no synchronize: the same stream orders it after our kernels.
        using var doubled = output * 2;

        Assert.Equal(DeviceType.CUDA, output.device_type);
        Assert.True(output.is_contiguous());
        var pointer = TorchInterop.DataPointer(output);
        Assert.NotEqual(IntPtr.Zero, pointer);
        using var alias = output.contiguous();
        Assert.Equal(pointer, TorchInterop.DataPointer(alias));
        var (reference, lse) = TorchReference.Attention(q, k, v, nhd: false, causal: false, 0, null);
        using var _ = reference;
        using var __ = lse;
        using var twice = reference * 2;
        var (relL1, cosine, _) = TorchReference.Compare(doubled, twice);
        Assert.True(relL1 <= 0.06 && cosine >= 0.998, $"relL1 {relL1:F4}, cosine {cosine:F5}");
    }

    [Fact]
    public void ModuleCallingTheDropInKeepsMemoryStableOver1000Iterations()
    {
        RequireCuda();
        using var block = new AttentionBlock();
        using var generator = new torch.Generator(5);
        using var x = TorchReference.Randn(generator, [2, 4, 512, 64], ScalarType.Float16, torch.CUDA);
        for (int i = 0; i < 20; i++)
        {
            using var scope = torch.NewDisposeScope();
            block.forward(x);
        }

        torch.cuda.synchronize();
        long before = CudaDriver.MemoryInfo().Free;
        double checksum = 0;
        for (int i = 0; i < 1000; i++)
        {
            using var scope = torch.NewDisposeScope();
            var y = block.forward(x);
            if (i % 250 == 0)
                checksum += y.abs().to(torch.float32).sum().item<float>();
        }

        torch.cuda.synchronize();
        long after = CudaDriver.MemoryInfo().Free;
        // Free device memory as the driver sees it (cuMemGetInfo; TorchSharp exposes no allocator statistics).
        // libtorch's caching allocator keeps blocks, so a leak of one output (512 KB) per iteration would show as ~500 MB.
        Assert.True(before - after < 64L << 20, $"free memory dropped by {(before - after) >> 20} MB over 1000 iterations");
        Assert.True(double.IsFinite(checksum) && checksum > 0);
    }

    /// <summary>A tiny self-attention block whose forward calls the drop-in, as a model would.</summary>
    private sealed class AttentionBlock : nn.Module<Tensor, Tensor>
    {
        public AttentionBlock()
            : base(nameof(AttentionBlock)) => RegisterComponents();

        public override Tensor forward(Tensor x) =>
            SageAttention.scaled_dot_product_attention(x, x, x, is_causal: true);
    }
}
