using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Host;

/// <summary>
/// Runs Sage attention on an ILGPU accelerator (the CPU accelerator, or ILGPU's CUDA accelerator):
/// validates, quantizes Q/K/V, launches the attention kernel. Kernels are compiled once per runner.
/// </summary>
/// <remarks>Not thread-safe: one runner per accelerator stream. Packed (varlen) batches: SageAttentionRunner.Varlen.cs.</remarks>
public sealed partial class SageAttentionRunner
{
    private readonly Accelerator _accelerator;
    private readonly Action<KernelConfig, StridedTensor, ArrayView<float>, int, int, PackedSequences> _channelStats;
    private readonly Action<KernelConfig, QuantizeInt8Params> _quantizeInt8;
    private readonly Action<KernelConfig, QuantizeVParams> _quantizeV;
    private readonly Action<KernelConfig, StridedTensor, ArrayView<float>, int, int, int, int, int, float, ArrayView<float>, PackedSequences, PackedSequences> _lseCorrection;
    private readonly Action<KernelConfig, AttentionParams, SpecializedValue<int>, SpecializedValue<int>> _attention;
    private readonly Action<KernelConfig, KvStatsParams> _kvStats;
    private readonly Action<KernelConfig, QkvQuantizeParams> _quantizeQkv;
    private Action<KernelConfig, KvStatsParams>? _kvStatsPacked;
    private Action<KernelConfig, QkvQuantizeParams>? _quantizeQkvPacked;
    private readonly Action<KernelConfig, OneLaunchQuantizeParams, SpecializedValue<int>, SpecializedValue<int>, SpecializedValue<int>, SpecializedValue<int>> _quantizeOneLaunch;
    private readonly Action<KernelConfig, AttentionParams, SpecializedValue<int>, SpecializedValue<int>> _varlenAttention;
    /// <summary>Dense launches still pass a valid (unread) cu_seqlens view.</summary>
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _noSequences;

    public SageAttentionRunner(Accelerator accelerator)
    {
        _accelerator = accelerator ?? throw new ArgumentNullException(nameof(accelerator));
        _channelStats = accelerator.LoadStreamKernel<StridedTensor, ArrayView<float>, int, int, PackedSequences>(ChannelStatsKernel.Run);
        _quantizeInt8 = accelerator.LoadStreamKernel<QuantizeInt8Params>(QuantizeInt8Kernel.Run);
        _quantizeV = accelerator.LoadStreamKernel<QuantizeVParams>(QuantizeVKernel.Run);
        _lseCorrection = accelerator.LoadStreamKernel<StridedTensor, ArrayView<float>, int, int, int, int, int, float, ArrayView<float>, PackedSequences, PackedSequences>(LseCorrectionKernel.Run);
        _attention = accelerator.LoadStreamKernel<AttentionParams, SpecializedValue<int>, SpecializedValue<int>>(AttentionKernel.Run);
        _kvStats = accelerator.LoadStreamKernel<KvStatsParams>(KvStatsKernel.Run);
        _quantizeQkv = accelerator.LoadStreamKernel<QkvQuantizeParams>(QkvQuantizeKernel.Run);
        _quantizeOneLaunch = accelerator.LoadStreamKernel<OneLaunchQuantizeParams, SpecializedValue<int>, SpecializedValue<int>,
            SpecializedValue<int>, SpecializedValue<int>>(QkvQuantizeOneLaunchKernel.Run);
        _varlenAttention = accelerator.LoadStreamKernel<AttentionParams, SpecializedValue<int>, SpecializedValue<int>>(VarlenAttentionKernel.Run);
        _noSequences = accelerator.Allocate1D<int>(1);
    }

    public Accelerator Accelerator => _accelerator;

    /// <summary>
    /// Fused (two launches, the default here), one launch or separate quantization kernels; the results are identical. The
    /// one-launch kernel is specialized per head dim, dtype, V format and granularity, which on the CPU accelerator costs a
    /// compilation per combination, so the CPU runner keeps the two launches (its tests select the others explicitly).
    /// </summary>
    public QuantizationPath QuantizationPath { get; set; } = QuantizationPath.Fused;

    /// <summary>K/V blocks per strip of the fused quantizer; null picks <see cref="QkvQuantizeKernel.DefaultStripTiles"/>.</summary>
    public int? StripTiles { get; set; }

    /// <summary>Validates Q [B, Hq, Nq, D], K and V [B, Hkv, Nk, D] and returns their shape.</summary>
    /// <exception cref="ArgumentException">Mismatched or out-of-range sizes or strides, naming the tensor.</exception>
    public static AttentionShape Validate(in StridedTensor q, in StridedTensor k, in StridedTensor v)
    {
        var shape = AttentionShape.Of((q.Batch, q.Heads, q.Tokens, q.HeadDim), (k.Batch, k.Heads, k.Tokens, k.HeadDim),
            (v.Batch, v.Heads, v.Tokens, v.HeadDim));
        CheckExtent(q, nameof(q));
        CheckExtent(k, nameof(k));
        CheckExtent(v, nameof(v));
        return shape;
    }

    /// <summary>Quantizes Q, K and V (with K and optional V smoothing) into new device buffers.</summary>
    public QuantizedAttentionInputs Quantize(in StridedTensor q, in StridedTensor k, in StridedTensor v,
        TensorElementType elementType, float smScale, SageAttentionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var shape = Validate(q, k, v);
        var quantized = new QuantizedAttentionInputs(_accelerator, shape, options);
        QuantizeInto(quantized, q, k, v, elementType, smScale);
        return quantized;
    }

    /// <summary>Allocates quantized buffers for inputs of this shape (reuse them with <see cref="QuantizeInto"/>).</summary>
    public QuantizedAttentionInputs AllocateQuantized(AttentionShape shape, SageAttentionOptions options) =>
        new(_accelerator, shape ?? throw new ArgumentNullException(nameof(shape)), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>Quantizes into existing buffers whose shape matches the inputs (no allocation: the benchmark path).</summary>
    public void QuantizeInto(QuantizedAttentionInputs quantized, in StridedTensor q, in StridedTensor k, in StridedTensor v,
        TensorElementType elementType, float smScale)
    {
        ArgumentNullException.ThrowIfNull(quantized);
        var shape = Validate(q, k, v);
        if (shape != quantized.Shape)
            throw new ArgumentException($"the quantized buffers were made for {quantized.Shape}, the inputs are {shape}.", nameof(quantized));
        if (!(smScale > 0) || float.IsInfinity(smScale))
            throw new ArgumentException($"sm_scale must be positive and finite, got {smScale}.", nameof(smScale));
        if (QuantizationPath == QuantizationPath.OneLaunch && FusedQuantizationPlan.TakesOneLaunch(shape))
        {
            QuantizeOneLaunch(quantized, q, k, v, elementType, smScale);
            return;
        }
        if (QuantizationPath is QuantizationPath.Fused or QuantizationPath.OneLaunch)
        {
            var plan = FusedQuantizationPlan.For(shape, StripTiles, FusedQuantizationPlan.ReadsVStats(quantized.Options, elementType));
            int vector = VectorLoads(q, k, v);
            QuantizeFused(plan, plan.StatsParams(shape, elementType, vector >> 1),
                plan.QuantizeParams(shape, quantized.Options, elementType, smScale, vector), RunnerGrid.Dense(shape, _noSequences.View),
                quantized.Views, q, k, v);
            return;
        }
        QuantizeSeparate(RunnerGrid.Dense(shape, _noSequences.View), quantized.Views, q, k, v, (int)elementType, smScale, quantized.Options);
    }

    /// <summary>
    /// The first implementation, dense or packed: statistics of K, of V, then INT8 Q, INT8 K and V in five launches.
    /// </summary>
    private void QuantizeSeparate(in RunnerGrid grid, in QuantizedViews quantized, in StridedTensor q, in StridedTensor k, in StridedTensor v,
        int type, float smScale, SageAttentionOptions options)
    {
        int dp = grid.PaddedHeadDim, chunks = grid.Chunks;
        var block = new Index3D(AttentionKernel.Threads, 1, 1);
        var statsGrid = new KernelConfig(new Index3D(chunks, grid.HeadsKv, grid.Batch), new Index3D(dp, 1, 1));
        _channelStats(statsGrid, k, quantized.KStats, type, dp, grid.KSequences);
        _channelStats(statsGrid, v, quantized.VStats, type, dp, grid.KSequences);
        _quantizeInt8(new KernelConfig(new Index3D(grid.QTiles, grid.HeadsQ, grid.Batch), block), new QuantizeInt8Params
        {
            Input = q, Sequences = grid.QSequences, Output = quantized.Q, Scales = quantized.QScale, Stats = quantized.KStats,
            StatsChunks = chunks, Smooth = 0, ElementType = type, PaddedHeadDim = dp, PaddedTokens = grid.QRows,
            Granularity = (int)options.Granularity, IsKey = 0, ScaleFold = smScale * SageConstants.Log2E,
        });
        _quantizeInt8(new KernelConfig(new Index3D(grid.KBlocks, grid.HeadsKv, grid.Batch), block), new QuantizeInt8Params
        {
            Input = k, Sequences = grid.KSequences, Output = quantized.K, Scales = quantized.KScale, Stats = quantized.KStats,
            StatsChunks = chunks, Smooth = options.SmoothK ? 1 : 0, ElementType = type, PaddedHeadDim = dp,
            PaddedTokens = grid.KRows, Granularity = (int)options.Granularity, IsKey = 1, ScaleFold = 1f,
        });
        _quantizeV(new KernelConfig(new Index3D(grid.KBlocks, grid.HeadsKv, grid.Batch), block), new QuantizeVParams
        {
            Input = v, Sequences = grid.KSequences, Output = quantized.V, Scales = quantized.VScale, Means = quantized.VMean,
            Stats = quantized.VStats, StatsChunks = chunks, Smooth = options.SmoothV ? 1 : 0, ElementType = type,
            PaddedHeadDim = dp, PaddedTokens = grid.KRows, Format = (int)options.VFormat,
        });
    }

    /// <summary>
    /// K and V statistics in one launch, then Q, K and V tiles in one launch (see <see cref="FusedQuantizationPlan"/>), with the
    /// scalar parameters the plan gave; the kernels' packed entries (loaded on first use) when <paramref name="grid"/> is packed.
    /// </summary>
    private void QuantizeFused(FusedQuantizationPlan plan, KvStatsParams stats, QkvQuantizeParams p, in RunnerGrid grid,
        in QuantizedViews quantized, in StridedTensor q, in StridedTensor k, in StridedTensor v)
    {
        var kvStats = grid.IsPacked ? _kvStatsPacked ??= _accelerator.LoadStreamKernel<KvStatsParams>(KvStatsKernel.RunPacked) : _kvStats;
        var quantizeQkv = grid.IsPacked
            ? _quantizeQkvPacked ??= _accelerator.LoadStreamKernel<QkvQuantizeParams>(QkvQuantizeKernel.RunPacked)
            : _quantizeQkv;
        stats.K = k;
        stats.V = v;
        stats.KStats = quantized.KStats;
        stats.VStats = quantized.VStats;
        stats.Sequences = grid.KSequences;
        kvStats(new KernelConfig(new Index3D(plan.StatsBlocks, 1, 1), new Index3D(KvStatsKernel.Threads, 1, 1)), stats);

        BindTiles(ref p, quantized, q, k, v);
        p.QSequences = grid.QSequences;
        p.KSequences = grid.KSequences;
        quantizeQkv(new KernelConfig(new Index3D((int)plan.QuantizeItems, 1, 1), new Index3D(TileSlices.Threads, 1, 1)), p);
    }

    /// <summary>Q, K and V in one launch (<see cref="QkvQuantizeOneLaunchKernel"/>).</summary>
    private void QuantizeOneLaunch(QuantizedAttentionInputs quantized, in StridedTensor q, in StridedTensor k, in StridedTensor v,
        TensorElementType elementType, float smScale)
    {
        var shape = quantized.Shape;
        var plan = FusedQuantizationPlan.For(shape, StripTiles, FusedQuantizationPlan.ReadsVStats(quantized.Options, elementType));
        var p = plan.OneLaunchParams(shape, quantized.Options, elementType, smScale, VectorLoads(q, k, v));
        BindTiles(ref p.Tiles, quantized.Views, q, k, v);
        p.Coordination = quantized.Coordination.View;
        long counters = QkvQuantizeOneLaunchKernel.CounterCount((long)shape.Batch * shape.HeadsKv);
        quantized.Coordination.View.SubView(0, counters).MemSetToZero();
        _quantizeOneLaunch(new KernelConfig(new Index3D((int)FusedQuantizationPlan.OneLaunchItems(shape), 1, 1),
            new Index3D(TileSlices.Threads, 1, 1)), p, SpecializedValue.New(p.Tiles.PaddedHeadDim), SpecializedValue.New(p.Tiles.ElementType),
            SpecializedValue.New(p.Tiles.VFormat), SpecializedValue.New(p.Tiles.Granularity));
    }

    /// <summary>Points a <see cref="QkvQuantizeParams"/> at the inputs and at the quantized buffers.</summary>
    private static void BindTiles(ref QkvQuantizeParams p, in QuantizedViews quantized, in StridedTensor q, in StridedTensor k,
        in StridedTensor v)
    {
        p.Q = q; p.K = k; p.V = v;
        p.QOut = quantized.Q; p.KOut = quantized.K; p.QScales = quantized.QScale; p.KScales = quantized.KScale;
        p.VOut = quantized.V; p.VScales = quantized.VScale; p.VMeans = quantized.VMean;
        p.KStats = quantized.KStats; p.VStats = quantized.VStats;
    }

    /// <summary>16-byte loads need the first element 16-byte aligned: device allocations are, so a view is when its offset is.</summary>
    private static bool Vector16(in StridedTensor t) => t.Aligned8 != 0 && ((IContiguousArrayView)t.Data).IndexInBytes % 16 == 0;

    /// <summary>Bits 0, 1, 2: Q, K, V may be read with 16-byte loads (<see cref="Vector16"/>; statistics: bits >> 1).</summary>
    private static int VectorLoads(in StridedTensor q, in StridedTensor k, in StridedTensor v) =>
        (Vector16(q) ? 1 : 0) | (Vector16(k) ? 2 : 0) | (Vector16(v) ? 4 : 0);

    /// <summary>
    /// Runs the attention kernel on quantized inputs, writing O [B, Hq, Nq, D] through its strides and,
    /// when <paramref name="lse"/> is not empty, the natural-log LSE [B, Hq, Nq].
    /// </summary>
    /// <param name="q">The unquantized Q, read only for the LSE correction of K smoothing.</param>
    /// <param name="causalOffset">Key j is visible to query i when j ≤ i + offset: 0 aligns top-left, Nk − Nq bottom-right.</param>
    public void Attend(QuantizedAttentionInputs quantized, in StridedTensor q, in StridedTensor output,
        TensorElementType elementType, float smScale, bool causal, int causalOffset, ArrayView<float> lse)
    {
        ArgumentNullException.ThrowIfNull(quantized);
        var shape = quantized.Shape;
        if (output.Batch != shape.Batch || output.Heads != shape.HeadsQ || output.Tokens != shape.Nq || output.HeadDim != shape.HeadDim)
            throw new ArgumentException($"output must be [{shape.Batch}, {shape.HeadsQ}, {shape.Nq}, {shape.HeadDim}].", nameof(output));
        CheckExtent(output, nameof(output));
        if (causal && causalOffset < 0)
            throw new ArgumentException($"causal offset must be ≥ 0 so every query sees at least one key, got {causalOffset}.", nameof(causalOffset));
        long rows = (long)shape.Batch * shape.HeadsQ * shape.Nq;
        bool writeLse = lse.Length > 0;
        if (writeLse && lse.Length < rows)
            throw new ArgumentException($"lse needs {rows} elements, has {lse.Length}.", nameof(lse));

        MemoryBuffer1D<float, Stride1D.Dense>? correction = null;
        try
        {
            bool corrected = writeLse && quantized.Options.SmoothK;
            var grid = RunnerGrid.Dense(shape, _noSequences.View);
            if (corrected)
            {
                correction = _accelerator.Allocate1D<float>(rows);
                LaunchLseCorrection(grid, q, quantized.KStats.View, (int)elementType, smScale, correction.View);
            }
            var p = AttentionParamsFor(grid, quantized.Views, output, elementType, causal, causalOffset, writeLse ? lse : null,
                corrected ? correction!.View : null, quantized.Options);
            if (quantized.Options.Variant.IsHopper())
                LaunchHopper(shape, p, quantized.Options);
            else
                _attention(new KernelConfig(new Index3D(shape.QTiles, shape.HeadsQ, shape.Batch), new Index3D(AttentionKernel.Threads, 1, 1), EmulationSharedMemory()),
                    p, SpecializedValue.New((int)quantized.Options.Variant), SpecializedValue.New(shape.PaddedHeadDim));
        }
        finally
        {
            if (correction is not null)
            {
                // The correction buffer must outlive the kernels that read it.
                _accelerator.Synchronize();
                correction.Dispose();
            }
        }
    }

    /// <summary>The additive LSE correction of K smoothing (q · mean(K) per row), dense or packed; it averages over Nk keys.</summary>
    private void LaunchLseCorrection(in RunnerGrid grid, in StridedTensor q, ArrayView<float> kStats, int type, float smScale, ArrayView<float> correction) =>
        _lseCorrection(new KernelConfig(new Index3D((grid.QRowsPerSequence + 127) / 128, grid.HeadsQ, grid.Batch), new Index3D(128, 1, 1)),
            q, kStats, grid.Chunks, grid.HeadsKv, grid.Nk, grid.PaddedHeadDim, type, smScale, correction, grid.QSequences, grid.KSequences);

    /// <summary>The attention kernel's parameters; views the kernel must not read (no LSE, no correction) point at V's means.</summary>
    private static AttentionParams AttentionParamsFor(in RunnerGrid grid, in QuantizedViews quantized, in StridedTensor output,
        TensorElementType elementType, bool causal, int causalOffset, ArrayView<float>? lse, ArrayView<float>? correction, SageAttentionOptions options) => new()
    {
        Q = quantized.Q.Cast<uint>(), QScale = quantized.QScale, K = quantized.K.Cast<uint>(), KScale = quantized.KScale,
        V = quantized.V, VScale = quantized.VScale, VMean = quantized.VMean,
        O = output.Data, Lse = lse ?? quantized.VMean, LseCorrection = correction ?? quantized.VMean,
        OStrideBatch = grid.IsPacked ? 0 : output.StrideBatch, OStrideHead = output.StrideHead, OStrideToken = output.StrideToken,
        HeadsQ = grid.HeadsQ, HeadsKv = grid.HeadsKv, Nq = grid.Nq, Nk = grid.Nk, HeadDim = grid.HeadDim,
        NqPad = grid.QRows, NkPad = grid.KRows, Causal = causal ? 1 : 0, CausalOffset = causalOffset,
        OutputType = (int)elementType, WriteLse = lse is null ? 0 : 1, SmoothV = options.SmoothV ? 1 : 0,
        HasLseCorrection = correction is null ? 0 : 1, QSequences = grid.QSequences, KSequences = grid.KSequences,
        PairedOutput = AttentionParams.PairedOutputFor(((IContiguousArrayView)output.Data).IndexInBytes % 4 == 0,
            grid.IsPacked ? 0 : output.StrideBatch, output.StrideHead, output.StrideToken),
    };

    /// <summary>Quantize and attend in one call; the quantized tensors are freed after the kernel is ordered.</summary>
    public void Run(in StridedTensor q, in StridedTensor k, in StridedTensor v, in StridedTensor output,
        TensorElementType elementType, float smScale, bool causal, int causalOffset, ArrayView<float> lse, SageAttentionOptions options)
    {
        using var quantized = Quantize(q, k, v, elementType, smScale, options);
        Attend(quantized, q, output, elementType, smScale, causal, causalOffset, lse);
        _accelerator.Synchronize();
    }

    /// <summary>The CPU accelerator needs shared staging for the tensor-core emulation; CUDA needs none.</summary>
    private SharedMemoryConfig EmulationSharedMemory() =>
        _accelerator.AcceleratorType == AcceleratorType.CPU
            ? SharedMemoryConfig.RequestDynamic<uint>(Intrinsics.TensorCore.EmulationSharedWords)
            : default;

    private static void CheckExtent(in StridedTensor t, string name) =>
        AttentionShape.CheckExtent(t.Batch, t.Heads, t.Tokens, t.HeadDim, t.StrideBatch, t.StrideHead, t.StrideToken, t.Data.Length, name);
}
