using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Host;

/// <summary>Packed (varlen) batches on an ILGPU accelerator: the same kernels in their packed mode.</summary>
public sealed partial class SageAttentionRunner
{
    /// <summary>
    /// Validates packed Q [1, Hq, Tq, D], K and V [1, Hkv, Tk, D] (a [T, H, D] tensor seen through strides),
    /// cu_seqlens views of B + 1 offsets and the max lengths, and returns the shape.
    /// </summary>
    /// <exception cref="ArgumentException">Names the argument: a tensor that is not one packed batch entry, mismatched sizes,
    /// cu_seqlens of different lengths, or maxima that cannot cover the totals.</exception>
    public static VarlenShape ValidateVarlen(in StridedTensor q, in StridedTensor k, in StridedTensor v,
        ArrayView<int> cuSeqlensQ, ArrayView<int> cuSeqlensK, int maxSeqlenQ, int maxSeqlenK)
    {
        foreach (var (t, name) in new[] { (q, nameof(q)), (k, nameof(k)), (v, nameof(v)) })
        {
            if (t.Batch != 1)
                throw new ArgumentException($"a packed tensor is one batch entry [1, H, T, D], got batch {t.Batch}.", name);
        }
        if (cuSeqlensQ.Length < 2)
            throw new ArgumentException($"cu_seqlens_q must hold B + 1 ≥ 2 offsets, has {cuSeqlensQ.Length}.", "cu_seqlens_q");
        if (cuSeqlensK.Length != cuSeqlensQ.Length)
            throw new ArgumentException($"cu_seqlens_k has {cuSeqlensK.Length} offsets, cu_seqlens_q has {cuSeqlensQ.Length}; both must be B + 1.", "cu_seqlens_k");
        if (k.HeadDim != q.HeadDim || v.HeadDim != q.HeadDim)
            throw new ArgumentException($"head_dim differs: q {q.HeadDim}, k {k.HeadDim}, v {v.HeadDim}.", nameof(k));
        if (v.Heads != k.Heads || v.Tokens != k.Tokens)
            throw new ArgumentException($"v [{v.Heads} heads, {v.Tokens} tokens] must match k [{k.Heads}, {k.Tokens}].", nameof(v));
        var shape = new VarlenShape(checked((int)cuSeqlensQ.Length - 1), q.Heads, k.Heads, q.Tokens, k.Tokens, maxSeqlenQ, maxSeqlenK, q.HeadDim);
        CheckExtent(q, nameof(q));
        CheckExtent(k, nameof(k));
        CheckExtent(v, nameof(v));
        return shape;
    }

    /// <summary>
    /// Sage attention over packed sequences: sequence s has queries [cuQ[s], cuQ[s+1]) of Q and keys
    /// [cuK[s], cuK[s+1]) of K and V; writes O [1, Hq, Tq, D] through its strides and, when <paramref name="lse"/> is
    /// not empty, the natural-log LSE [Hq, Tq]. Quantization is per sequence (K mean, Q/K scales, V scales).
    /// Synchronizes before returning (the quantized buffers are freed).
    /// </summary>
    /// <param name="causal">Bottom-right causal mask per sequence: query i sees key j iff j ≤ i + (Lk − Lq).</param>
    /// <remarks>cu_seqlens contents are trusted (see <see cref="PackedSequences"/>): values are clamped, never read past.</remarks>
    /// <exception cref="ArgumentException">Sizes, strides, scale or buffers are wrong (names the argument).</exception>
    public void RunVarlen(in StridedTensor q, in StridedTensor k, in StridedTensor v, in StridedTensor output,
        ArrayView<int> cuSeqlensQ, ArrayView<int> cuSeqlensK, int maxSeqlenQ, int maxSeqlenK,
        TensorElementType elementType, float smScale, bool causal, ArrayView<float> lse, SageAttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var shape = ValidateVarlen(q, k, v, cuSeqlensQ, cuSeqlensK, maxSeqlenQ, maxSeqlenK);
        if (output.Batch != 1 || output.Heads != shape.HeadsQ || output.Tokens != shape.TotalQ || output.HeadDim != shape.HeadDim)
            throw new ArgumentException($"output must be [1, {shape.HeadsQ}, {shape.TotalQ}, {shape.HeadDim}] (packed).", nameof(output));
        CheckExtent(output, nameof(output));
        if (!(smScale > 0) || float.IsInfinity(smScale))
            throw new ArgumentException($"sm_scale must be positive and finite, got {smScale}.", nameof(smScale));
        var layout = shape.Layout(options);
        bool writeLse = lse.Length > 0;
        if (writeLse && lse.Length < layout.LseRows)
            throw new ArgumentException($"lse needs {layout.LseRows} elements, has {lse.Length}.", nameof(lse));
        bool corrected = writeLse && options.SmoothK;

        using var qInt8 = _accelerator.Allocate1D<sbyte>(layout.QBytes);
        using var qScale = _accelerator.Allocate1D<float>(layout.QScales);
        using var kInt8 = _accelerator.Allocate1D<sbyte>(layout.KBytes);
        using var kScale = _accelerator.Allocate1D<float>(layout.KScales);
        using var vQuantized = _accelerator.Allocate1D<uint>(layout.VWords);
        using var vScale = _accelerator.Allocate1D<float>(layout.VScales);
        using var vMean = _accelerator.Allocate1D<float>(layout.VMeans);
        using var kStats = _accelerator.Allocate1D<float>(layout.KStats);
        using var vStats = _accelerator.Allocate1D<float>(layout.VStats);
        using var correction = _accelerator.Allocate1D<float>(corrected ? layout.LseRows : 1);

        var grid = RunnerGrid.Packed(shape, cuSeqlensQ, cuSeqlensK);
        var views = new QuantizedViews(qInt8.View, qScale.View, kInt8.View, kScale.View, vQuantized.View, vScale.View, vMean.View,
            kStats.View, vStats.View);
        if (QuantizationPath == QuantizationPath.Separate)
            QuantizeSeparate(grid, views, q, k, v, (int)elementType, smScale, options);
        else
        {
            var plan = FusedQuantizationPlan.ForPacked(shape, StripTiles, FusedQuantizationPlan.ReadsVStats(options, elementType));
            int vector = VectorLoads(q, k, v);
            QuantizeFused(plan, plan.PackedStatsParams(shape, elementType, vector >> 1),
                plan.PackedQuantizeParams(shape, options, elementType, smScale, vector), grid, views, q, k, v);
        }
        if (corrected)
            LaunchLseCorrection(grid, q, kStats.View, (int)elementType, smScale, correction.View);
        var p = AttentionParamsFor(grid, views, output, elementType, causal, 0, writeLse ? lse : null, corrected ? correction.View : null, options);
        if (options.Variant.IsHopper())
            LaunchHopperPacked(shape, p, options);
        else
            _varlenAttention(new KernelConfig(new Index3D(shape.QTiles, shape.HeadsQ, shape.Batch), new Index3D(AttentionKernel.Threads, 1, 1),
                EmulationSharedMemory()), p, SpecializedValue.New((int)options.Variant), SpecializedValue.New(shape.PaddedHeadDim));
        _accelerator.Synchronize();
    }
}
