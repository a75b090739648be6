using ILGPU;
using ILGPU.Runtime;

namespace SageAttn.Kernels.Host;

/// <summary>The device tensors the quantizers produce and the attention kernel reads (layouts: see AttentionParams).</summary>
public sealed class QuantizedAttentionInputs : IDisposable
{
    public AttentionShape Shape { get; }
    public SageAttentionOptions Options { get; }
    public MemoryBuffer1D<sbyte, Stride1D.Dense> Q { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> QScale { get; }
    public MemoryBuffer1D<sbyte, Stride1D.Dense> K { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> KScale { get; }
    public MemoryBuffer1D<uint, Stride1D.Dense> V { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> VScale { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> VMean { get; }
    /// <summary>Channel statistics of K (smoothing mean; the LSE correction reads them too).</summary>
    public MemoryBuffer1D<float, Stride1D.Dense> KStats { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> VStats { get; }
    /// <summary>The one-launch quantization's ticket, arrival counters (zeroed before each of its launches) and K channel means.</summary>
    public MemoryBuffer1D<int, Stride1D.Dense> Coordination { get; }

    /// <summary>Views of all the buffers, as the runner's launches take them.</summary>
    internal QuantizedViews Views => new(Q.View, QScale.View, K.View, KScale.View, V.View, VScale.View, VMean.View, KStats.View, VStats.View);

    internal QuantizedAttentionInputs(Accelerator accelerator, AttentionShape shape, SageAttentionOptions options)
    {
        Shape = shape;
        Options = options;
        var layout = QuantizedLayout.For(shape, options);
        Q = accelerator.Allocate1D<sbyte>(layout.QBytes);
        QScale = accelerator.Allocate1D<float>(layout.QScales);
        K = accelerator.Allocate1D<sbyte>(layout.KBytes);
        KScale = accelerator.Allocate1D<float>(layout.KScales);
        V = accelerator.Allocate1D<uint>(layout.VWords);
        VScale = accelerator.Allocate1D<float>(layout.VScales);
        VMean = accelerator.Allocate1D<float>(layout.VMeans);
        KStats = accelerator.Allocate1D<float>(layout.KStats);
        VStats = accelerator.Allocate1D<float>(layout.VStats);
        Coordination = accelerator.Allocate1D<int>(layout.Coordination);
    }

    public void Dispose()
    {
        Q.Dispose(); QScale.Dispose(); K.Dispose(); KScale.Dispose(); V.Dispose();
        VScale.Dispose(); VMean.Dispose(); KStats.Dispose(); VStats.Dispose(); Coordination.Dispose();
    }
}
