using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using SageAttn.Quantization.Reference;

namespace SageAttn.Tests.Support;

/// <summary>One ILGPU context and accelerator per test class, with the kernels compiled once.</summary>
public abstract class AcceleratorFixture : IDisposable
{
    private readonly Context _context;

    protected AcceleratorFixture(bool cuda)
    {
        _context = AcceleratorFactory.CreateContext(includeCuda: cuda);
        try
        {
            Accelerator = cuda ? AcceleratorFactory.TryCreateCuda(_context) : AcceleratorFactory.CreateCpu(_context);
        }
        catch (Exception e) when (cuda)
        {
            UnavailableReason = "CUDA accelerator could not be created: " + e.Message;
        }
        if (Accelerator is null && UnavailableReason is null)
            UnavailableReason = "no CUDA device in this machine (CI has none; these tests run on the GPU machine)";
        if (Accelerator is not null)
            Runner = new SageAttentionRunner(Accelerator);
    }

    public Accelerator? Accelerator { get; }
    public SageAttentionRunner? Runner { get; }
    public string? UnavailableReason { get; }

    /// <summary>The runner, or a visible skip when this machine has no such accelerator.</summary>
    public SageAttentionRunner Require()
    {
        if (Runner is null)
            Assert.Skip(UnavailableReason ?? "accelerator unavailable");
        return Runner!;
    }

    /// <summary>Copies a host tensor to a fresh (aligned) device buffer, keeping its strides; <paramref name="aligned8"/> false forces the element-by-element read path.</summary>
    public (MemoryBuffer1D<ushort, Stride1D.Dense> Buffer, StridedTensor View) Upload(HostTensor t, bool aligned8 = true)
    {
        var buffer = Accelerator!.Allocate1D(t.Data);
        return (buffer, new StridedTensor(buffer.View, t.Batch, t.Heads, t.Tokens, t.HeadDim, t.StrideBatch, t.StrideHead, t.StrideToken, aligned8));
    }

    public void Dispose()
    {
        Accelerator?.Dispose();
        _context.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class CpuAcceleratorFixture() : AcceleratorFixture(cuda: false);

public sealed class CudaAcceleratorFixture() : AcceleratorFixture(cuda: true);
