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

    internal QuantizedAttentionInputs(Accelerator accelerator, AttentionShape shape, SageAttentionOptions options)
    {
        Shape = shape;
        Options = options;
        int dp = shape.PaddedHeadDim;
        long qHeads = (long)shape.Batch * shape.HeadsQ, kvHeads = (long)shape.Batch * shape.HeadsKv;
        int vChunks = shape.KStatsChunks;
        Q = accelerator.Allocate1D<sbyte>(qHeads * shape.NqPad * dp);
        QScale = accelerator.Allocate1D<float>(qHeads * shape.QTiles * Quantization.SageConstants.QScaleSlotsPerTile);
        K = accelerator.Allocate1D<sbyte>(kvHeads * shape.NkPad * dp);
        KScale = accelerator.Allocate1D<float>(kvHeads * shape.KBlocks * Quantization.SageConstants.KScaleSlotsPerBlock);
        int elementsPerWord = options.VFormat == Quantization.VFormat.Fp16 ? 2 : 4;
        V = accelerator.Allocate1D<uint>(kvHeads * dp * shape.NkPad / elementsPerWord);
        VScale = accelerator.Allocate1D<float>(kvHeads * dp);
        VMean = accelerator.Allocate1D<float>(kvHeads * dp);
        KStats = accelerator.Allocate1D<float>(kvHeads * shape.KStatsChunks * 3 * dp);
        VStats = accelerator.Allocate1D<float>(kvHeads * vChunks * 3 * dp);
    }

    public void Dispose()
    {
        Q.Dispose(); QScale.Dispose(); K.Dispose(); KScale.Dispose(); V.Dispose();
        VScale.Dispose(); VMean.Dispose(); KStats.Dispose(); VStats.Dispose();
    }
}
