using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Host;

/// <summary>
/// Grids and scalar parameters of the fused quantization (<see cref="KvStatsKernel"/> then <see cref="QkvQuantizeKernel"/>),
/// defined once for the ILGPU runner and the driver path. <paramref name="VStats"/>: whether the statistics launch reads V
/// too (<see cref="ReadsVStats"/>).
/// </summary>
public sealed record FusedQuantizationPlan(int StripTiles, int Strips, long QuantizeItems, int StatsBlocks, bool VStats)
{
    /// <summary>
    /// Whether V's channel statistics are needed: for smoothing V, for FP8 V's per-channel scales, and for FP16 V from bf16
    /// inputs (values past fp16's range scale down). fp16 inputs kept in FP16 never scale (<see cref="SageConstants.VMaxFp16Value"/>),
    /// so the statistics launch reads only K for them: half its bytes (the V statistics buffer is then left unwritten).
    /// </summary>
    public static bool ReadsVStats(SageAttentionOptions options, TensorElementType elementType)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.SmoothV || options.VFormat != VFormat.Fp16 || elementType != TensorElementType.Float16;
    }

    /// <summary>The plan for <paramref name="shape"/>; <paramref name="stripTiles"/> overrides the K/V strip length (tests, tuning).</summary>
    /// <param name="shape">The call's shape.</param>
    /// <param name="stripTiles">K/V tiles per quantization block, or null for the default.</param>
    /// <param name="vStats">Whether V's statistics are computed (<see cref="ReadsVStats"/>).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="stripTiles"/> is not positive.</exception>
    public static FusedQuantizationPlan For(AttentionShape shape, int? stripTiles = null, bool vStats = true)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (stripTiles is <= 0)
            throw new ArgumentOutOfRangeException(nameof(stripTiles), stripTiles, "strip length must be positive.");
        int tiles = stripTiles ?? QkvQuantizeKernel.DefaultStripTiles(shape.KStatsChunks, shape.KBlocks);
        int strips = (shape.KBlocks + tiles - 1) / tiles;
        long items = QkvQuantizeKernel.Items(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.QTiles, strips);
        if (items > int.MaxValue)
            throw new ArgumentException($"{items} quantization blocks exceed the grid limit.", nameof(shape));
        int statsBlocks = KvStatsKernel.Blocks(shape.Batch, shape.HeadsKv, shape.KStatsChunks, shape.PaddedHeadDim, vStats ? 2 : 1);
        return new FusedQuantizationPlan(tiles, strips, items, statsBlocks, vStats);
    }

    /// <summary>
    /// The plan of a packed call: every sequence gets the items of the longest one (<see cref="GridShape"/>), and items past
    /// a sequence's end exit on the device (the host never reads cu_seqlens).
    /// </summary>
    public static FusedQuantizationPlan ForPacked(VarlenShape shape, int? stripTiles = null, bool vStats = true)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return For(GridShape(shape), stripTiles, vStats);
    }

    /// <summary>A packed call's grid as a dense batch: one entry of max_seqlen_q queries and max_seqlen_k keys per sequence.</summary>
    public static AttentionShape GridShape(VarlenShape shape) =>
        new(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.MaxQ, shape.MaxK, shape.HeadDim);

    /// <summary>
    /// Whether <see cref="QkvQuantizeOneLaunchKernel"/> takes <paramref name="shape"/>: heads of at most
    /// <see cref="QkvQuantizeOneLaunchKernel.MaxChunks"/> statistics chunks (longer heads were not measured in it) within the grid limit.
    /// </summary>
    public static bool TakesOneLaunch(AttentionShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return shape.KStatsChunks <= QkvQuantizeOneLaunchKernel.MaxChunks && OneLaunchItems(shape) <= int.MaxValue;
    }

    /// <summary>Work items of one step of one tensor in the one-launch kernel (a head's statistics items and tiles).</summary>
    public static long OneLaunchStepItems(AttentionShape shape) =>
        QkvQuantizeOneLaunchKernel.StepItems(shape.KBlocks, shape.KStatsChunks, shape.PaddedHeadDim);

    /// <summary>Blocks of the one-launch kernel.</summary>
    public static long OneLaunchItems(AttentionShape shape)
    {
        long step = OneLaunchStepItems(shape);
        return QkvQuantizeOneLaunchKernel.Items(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.QTiles, step,
            QkvQuantizeOneLaunchKernel.LagSteps(step, (long)shape.Batch * shape.HeadsKv));
    }

    /// <summary>The one-launch kernel's scalar parameters (views and tensors are filled in by the launcher).</summary>
    public OneLaunchQuantizeParams OneLaunchParams(AttentionShape shape, SageAttentionOptions options, TensorElementType elementType,
        float smScale, int vectorLoads) => new()
    {
        Tiles = QuantizeParams(shape, options, elementType, smScale, vectorLoads),
        Lag = QkvQuantizeOneLaunchKernel.LagSteps(OneLaunchStepItems(shape), (long)shape.Batch * shape.HeadsKv),
    };

    /// <summary>The statistics kernel's scalar parameters (views and tensors are filled in by the launcher).</summary>
    public KvStatsParams StatsParams(AttentionShape shape, TensorElementType elementType, int vectorLoads) => new()
    {
        ElementType = (int)elementType, PaddedHeadDim = shape.PaddedHeadDim, Chunks = shape.KStatsChunks, VectorLoads = vectorLoads,
        Tensors = VStats ? 2 : 1,
    };

    /// <summary>The packed statistics kernel's scalar parameters (<see cref="KvStatsKernel.RunPacked"/>; the launcher adds views and sequences).</summary>
    public KvStatsParams PackedStatsParams(VarlenShape shape, TensorElementType elementType, int vectorLoads)
    {
        var p = StatsParams(GridShape(shape), elementType, vectorLoads);
        p.SequenceCount = shape.Batch;
        return p;
    }

    /// <summary>
    /// The packed quantization kernel's scalar parameters (<see cref="QkvQuantizeKernel.RunPacked"/>): the layouts' padded
    /// rows of all sequences, the grid's tiles of the longest; the launcher adds views and sequences.
    /// </summary>
    public QkvQuantizeParams PackedQuantizeParams(VarlenShape shape, SageAttentionOptions options, TensorElementType elementType,
        float smScale, int vectorLoads)
    {
        var p = QuantizeParams(GridShape(shape), options, elementType, smScale, vectorLoads);
        p.NqPad = shape.QRows;
        p.NkPad = shape.KRows;
        p.Sequences = shape.Batch;
        p.SequenceQTiles = shape.QTiles;
        return p;
    }

    /// <summary>The quantization kernel's scalar parameters (views and tensors are filled in by the launcher).</summary>
    /// <param name="vectorLoads">Bits 0, 1, 2: Q, K, V start 16-byte aligned.</param>
    public QkvQuantizeParams QuantizeParams(AttentionShape shape, SageAttentionOptions options, TensorElementType elementType,
        float smScale, int vectorLoads) => new()
    {
        StatsChunks = shape.KStatsChunks, SmoothK = options.SmoothK ? 1 : 0, SmoothV = options.SmoothV ? 1 : 0,
        ElementType = (int)elementType, PaddedHeadDim = shape.PaddedHeadDim, NqPad = shape.NqPad, NkPad = shape.NkPad,
        Granularity = (int)options.Granularity, VFormat = (int)options.VFormat, QScaleFold = smScale * SageConstants.Log2E,
        StripTiles = StripTiles, Strips = Strips, VectorLoads = vectorLoads, ReadVStats = VStats ? 1 : 0,
    };
}
