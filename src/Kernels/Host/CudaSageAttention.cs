using System.Collections.Concurrent;
using System.Reflection;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Host;

/// <summary>
/// The Sage attention pipeline of <see cref="SageAttentionRunner"/> (channel statistics, INT8 Q/K, FP8/FP16 V,
/// optional LSE correction, attention) launched through the CUDA driver API on a caller's stream in the
/// current device's primary context: no ILGPU accelerator, no second context, no synchronize.
/// </summary>
/// <remarks>
/// <para>
/// Why: libtorch works in the primary context on its current stream. Enqueuing every kernel on that
/// stream orders them after the ops that produced the inputs and before whatever reads the output, so
/// the caller never waits. The caller owns every buffer (inputs, output, scratch, LSE) and must keep it
/// alive until the launches are ordered before any reuse (libtorch's caching allocator does this for
/// tensors freed after enqueue on the same stream).
/// </para>
/// <para>
/// PTX is generated for the device's compute capability capped at sm_90 with the highest PTX ISA the driver
/// accepts (8.7+ on CUDA 12.8+ drivers, which the FP16-accumulating e4m3 mma needs). Modules are compiled
/// and loaded once per (context, kernel, specialization) by <see cref="CudaKernelLauncher"/>.
/// Launch configurations mirror <see cref="SageAttentionRunner"/> exactly.
/// </para>
/// <para>Thread safety: concurrent calls are allowed; each builds its own launch arguments.</para>
/// <para>Packed (varlen) batches: CudaSageAttention.Varlen.cs.</para>
/// </remarks>
public sealed partial class CudaSageAttention : IDisposable
{
    private static readonly MethodInfo ChannelStats = typeof(ChannelStatsKernel).GetMethod(nameof(ChannelStatsKernel.Run))!;
    private static readonly MethodInfo QuantizeInt8 = typeof(QuantizeInt8Kernel).GetMethod(nameof(QuantizeInt8Kernel.Run))!;
    private static readonly MethodInfo QuantizeV = typeof(QuantizeVKernel).GetMethod(nameof(QuantizeVKernel.Run))!;
    private static readonly MethodInfo LseCorrection = typeof(LseCorrectionKernel).GetMethod(nameof(LseCorrectionKernel.Run))!;
    private static readonly MethodInfo Attention = typeof(AttentionKernel).GetMethod(nameof(AttentionKernel.Run))!;
    private static readonly MethodInfo KvStats = typeof(KvStatsKernel).GetMethod(nameof(KvStatsKernel.Run))!;
    private static readonly MethodInfo QuantizeQkv = typeof(QkvQuantizeKernel).GetMethod(nameof(QkvQuantizeKernel.Run))!;
    private static readonly MethodInfo KvStatsPacked = typeof(KvStatsKernel).GetMethod(nameof(KvStatsKernel.RunPacked))!;
    private static readonly MethodInfo QuantizeQkvPacked = typeof(QkvQuantizeKernel).GetMethod(nameof(QkvQuantizeKernel.RunPacked))!;
    private static readonly MethodInfo QuantizeOneLaunch = typeof(QkvQuantizeOneLaunchKernel).GetMethod(nameof(QkvQuantizeOneLaunchKernel.Run))!;
    private static readonly MethodInfo VarlenAttention = typeof(VarlenAttentionKernel).GetMethod(nameof(VarlenAttentionKernel.Run))!;
    private static readonly MethodInfo HopperAttention = typeof(HopperAttentionKernel).GetMethod(nameof(HopperAttentionKernel.Run))!;
    private static readonly MethodInfo HopperSpecializedAttention = typeof(HopperAttentionKernel).GetMethod(nameof(HopperAttentionKernel.RunWarpSpecialized))!;
    private static readonly MethodInfo HopperPackedAttention = typeof(HopperAttentionKernel).GetMethod(nameof(HopperAttentionKernel.RunPacked))!;

    private readonly CudaKernelLauncher _launcher;
    private readonly ConcurrentDictionary<int, PtxTarget> _targets = new();

    /// <summary>Creates the pipeline with its own launcher (and PTX compiler).</summary>
    public CudaSageAttention()
    {
        _launcher = new CudaKernelLauncher();
    }

    /// <summary>One launch (the default; heads over 4096 tokens take two), fused (two launches) or separate quantization kernels; the results are identical. Set before use.</summary>
    public QuantizationPath QuantizationPath { get; init; } = QuantizationPath.OneLaunch;

    /// <summary>The highest architecture the kernels are generated for (sm_90: no wgmma path yet).</summary>
    public static CudaArchitecture MaxArchitecture => CudaArchitecture.SM_90;

    /// <summary>The PTX target for a device: its compute capability capped at <see cref="MaxArchitecture"/>.</summary>
    public static PtxTarget TargetFor((int Major, int Minor) computeCapability, int driverVersion)
    {
        var capped = computeCapability.Major * 10 + computeCapability.Minor > 90 ? (9, 0) : computeCapability;
        return PtxTarget.ForDevice(capped, driverVersion);
    }

    /// <summary>Byte sizes of the scratch buffers a call of this shape and options needs.</summary>
    public static IReadOnlyList<(string Name, long Bytes)> ScratchBytes(AttentionShape shape, SageAttentionOptions options) =>
        QuantizedLayout.For(shape, options).ScratchBytes;

    /// <summary>Checks Q [B, Hq, Nq, D], K and V [B, Hkv, Nk, D] and returns their shape.</summary>
    /// <exception cref="ArgumentException">Mismatched or out-of-range sizes or strides, naming the tensor.</exception>
    public static AttentionShape Validate(in DeviceTensor q, in DeviceTensor k, in DeviceTensor v)
    {
        var shape = AttentionShape.Of((q.Batch, q.Heads, q.Tokens, q.HeadDim), (k.Batch, k.Heads, k.Tokens, k.HeadDim),
            (v.Batch, v.Heads, v.Tokens, v.HeadDim));
        q.CheckExtent(nameof(q));
        k.CheckExtent(nameof(k));
        v.CheckExtent(nameof(v));
        return shape;
    }

    /// <summary>
    /// Enqueues the whole pipeline on <paramref name="stream"/> of device <paramref name="device"/> and
    /// returns without waiting.
    /// </summary>
    /// <param name="device">CUDA ordinal the pointers live on; its primary context is made current for the launches.</param>
    /// <param name="causalOffset">Key j is visible to query i when j ≤ i + offset (0 top-left, Nk − Nq bottom-right).</param>
    /// <param name="lse">Natural-log LSE [B, Hq, Nq] floats, or a zero-length view for none.</param>
    /// <param name="lseCorrection">[B, Hq, Nq] floats of scratch for the K-smoothing LSE correction; needed only when <paramref name="lse"/> is given and K smoothing is on.</param>
    /// <exception cref="ArgumentException">A size, stride, scale or buffer is wrong (the message names it).</exception>
    /// <exception cref="NotSupportedException">The variant needs an architecture the device lacks.</exception>
    /// <exception cref="CudaException">A driver call failed (names the kernel and launch configuration).</exception>
    public void Enqueue(int device, IntPtr stream, in DeviceTensor q, in DeviceTensor k, in DeviceTensor v, in DeviceTensor output,
        TensorElementType elementType, float smScale, bool causal, int causalOffset, SageAttentionOptions options,
        QuantizedScratch scratch, DeviceView lse, DeviceView lseCorrection) =>
        Enqueue(device, stream, q, k, v, output, elementType, smScale, causal, causalOffset, options, scratch, lse, lseCorrection, PipelineStages.All);

    /// <summary>
    /// <see cref="Enqueue(int, IntPtr, in DeviceTensor, in DeviceTensor, in DeviceTensor, in DeviceTensor, TensorElementType, float, bool, int, SageAttentionOptions, QuantizedScratch, DeviceView, DeviceView)"/>
    /// limited to <paramref name="stages"/>: <see cref="PipelineStages.Attend"/> alone reads scratch that an earlier
    /// call with the same inputs and options quantized (benchmarks time the attention kernel that way).
    /// </summary>
    /// <exception cref="ArgumentException">As the full call, or <paramref name="stages"/> is empty.</exception>
    public void Enqueue(int device, IntPtr stream, in DeviceTensor q, in DeviceTensor k, in DeviceTensor v, in DeviceTensor output,
        TensorElementType elementType, float smScale, bool causal, int causalOffset, SageAttentionOptions options,
        QuantizedScratch scratch, DeviceView lse, DeviceView lseCorrection, PipelineStages stages)
    {
        if ((stages & PipelineStages.All) == 0)
            throw new ArgumentException("at least one pipeline stage must be enqueued.", nameof(stages));
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(scratch);
        var shape = Validate(q, k, v);
        if (output.Batch != shape.Batch || output.Heads != shape.HeadsQ || output.Tokens != shape.Nq || output.HeadDim != shape.HeadDim)
            throw new ArgumentException($"output must be [{shape.Batch}, {shape.HeadsQ}, {shape.Nq}, {shape.HeadDim}].", nameof(output));
        output.CheckExtent(nameof(output));
        if (!(smScale > 0) || float.IsInfinity(smScale))
            throw new ArgumentException($"sm_scale must be positive and finite, got {smScale}.", nameof(smScale));
        if (causal && causalOffset < 0)
            throw new ArgumentException($"causal offset must be ≥ 0 so every query sees at least one key, got {causalOffset}.", nameof(causalOffset));
        var layout = QuantizedLayout.For(shape, options);
        scratch.Check(layout);
        var (writeLse, corrected) = CheckLse(layout.LseRows, lse, lseCorrection, options.SmoothK);

        using var binding = PrimaryContextBinding.Bind(device);
        var target = TargetOf(device);
        RequireWgmmaDevice(device, options.Variant);
        RequireFp8(target, device, options.Variant);

        int dp = shape.PaddedHeadDim, type = (int)elementType;
        var kernelBlock = AttentionKernel.Threads;
        using var args = new KernelArgs();
        // Dense launches still pass a valid (unread) cu_seqlens view.
        var grid = CudaPipelineGrid.Dense(shape, scratch.VMean with { Length = 0 });

        if ((stages & PipelineStages.Quantize) != 0)
        {
            if (QuantizationPath == QuantizationPath.OneLaunch
                && FusedQuantizationPlan.TakesOneLaunch(shape))
                EnqueueOneLaunchQuantization(target, stream, shape, q, k, v, elementType, smScale, options, scratch, args);
            else if (QuantizationPath is QuantizationPath.Fused or QuantizationPath.OneLaunch)
            {
                var plan = FusedQuantizationPlan.For(shape, vStats: FusedQuantizationPlan.ReadsVStats(options, elementType));
                int vector = VectorLoads(q, k, v);
                EnqueueFusedQuantization(target, stream, plan, plan.StatsParams(shape, elementType, vector >> 1),
                    plan.QuantizeParams(shape, options, elementType, smScale, vector), grid, q, k, v, scratch, args);
            }
            else
                EnqueueSeparateQuantization(target, stream, grid, q, k, v, elementType, smScale, options, scratch, args);
        }
        if ((stages & PipelineStages.Attend) == 0)
            return;

        if (corrected)
            EnqueueLseCorrection(target, stream, grid, q, elementType, smScale, scratch, lseCorrection, args);

        var attention = new AttentionParams
        {
            OStrideBatch = output.StrideBatch, OStrideHead = output.StrideHead, OStrideToken = output.StrideToken,
            HeadsQ = shape.HeadsQ, HeadsKv = shape.HeadsKv, Nq = shape.Nq, Nk = shape.Nk, HeadDim = shape.HeadDim,
            NqPad = shape.NqPad, NkPad = shape.NkPad, Causal = causal ? 1 : 0, CausalOffset = causalOffset,
            OutputType = type, WriteLse = writeLse ? 1 : 0, SmoothV = options.SmoothV ? 1 : 0, HasLseCorrection = corrected ? 1 : 0,
            PairedOutput = AttentionParams.PairedOutputFor(output.Pointer % 4 == 0, output.StrideBatch, output.StrideHead, output.StrideToken),
        };
        var attentionViews = AttentionViews(grid, output, scratch, writeLse ? lse : null, corrected ? lseCorrection : null);
        if (options.Variant == AttentionVariant.HopperQkInt8PvFp8 && (options.HopperWarpSpecialized || HopperWarpSpecializedOverride.Value))
            LaunchHopperWarpSpecialized(target, stream, args, attention, attentionViews, TensorMapsFor(shape, scratch, 1), shape.QTiles, shape.HeadsQ,
                shape.Batch, dp);
        else if (options.Variant.IsHopper())
            LaunchHopper(target, HopperAttention, stream, args, attention, attentionViews,
                TensorMapsFor(shape, scratch, HopperAttentionKernel.ValueBytes(options.Variant)), shape.QTiles, shape.HeadsQ, shape.Batch, dp, options);
        else
        {
            Launch(target, Attention, new LaunchDimensions(shape.QTiles, shape.HeadsQ, shape.Batch, kernelBlock, 1, 1), stream,
                args.AddParameter(attention, attentionViews).Add((int)options.Variant).Add(dp),
                (int)options.Variant, dp);
        }
    }

    /// <summary>The first implementation: statistics of K, of V, then INT8 Q, INT8 K and V in five launches (dense or packed).</summary>
    private void EnqueueSeparateQuantization(PtxTarget target, IntPtr stream, in CudaPipelineGrid grid, in DeviceTensor q, in DeviceTensor k,
        in DeviceTensor v, TensorElementType elementType, float smScale, SageAttentionOptions options, QuantizedScratch scratch, KernelArgs args)
    {
        int dp = grid.PaddedHeadDim, type = (int)elementType, chunks = grid.Chunks;
        var kernelBlock = AttentionKernel.Threads;
        var statsDims = new LaunchDimensions(chunks, grid.HeadsKv, grid.Batch, dp, 1, 1);
        Launch(target, ChannelStats, statsDims, stream, args.AddParameter(k.ToStrided(), Views(("Data", k)))
            .AddView(scratch.KStats.Pointer, scratch.KStats.Length).Add(type).Add(dp).AddSequences(grid.KSequences, grid.CuSeqlensK));
        Launch(target, ChannelStats, statsDims, stream, args.AddParameter(v.ToStrided(), Views(("Data", v)))
            .AddView(scratch.VStats.Pointer, scratch.VStats.Length).Add(type).Add(dp).AddSequences(grid.KSequences, grid.CuSeqlensK));

        var quantizeQ = new QuantizeInt8Params
        {
            Input = q.ToStrided(), Sequences = grid.QSequences, StatsChunks = chunks, Smooth = 0, ElementType = type, PaddedHeadDim = dp,
            PaddedTokens = grid.QRows, Granularity = (int)options.Granularity, IsKey = 0, ScaleFold = smScale * SageConstants.Log2E,
        };
        Launch(target, QuantizeInt8, new LaunchDimensions(grid.QTiles, grid.HeadsQ, grid.Batch, kernelBlock, 1, 1), stream,
            args.AddParameter(quantizeQ, Int8Views(q, scratch.Q, scratch.QScale, scratch.KStats, grid.CuSeqlensQ)));
        var quantizeK = new QuantizeInt8Params
        {
            Input = k.ToStrided(), Sequences = grid.KSequences, StatsChunks = chunks, Smooth = options.SmoothK ? 1 : 0, ElementType = type,
            PaddedHeadDim = dp, PaddedTokens = grid.KRows, Granularity = (int)options.Granularity, IsKey = 1, ScaleFold = 1f,
        };
        Launch(target, QuantizeInt8, new LaunchDimensions(grid.KBlocks, grid.HeadsKv, grid.Batch, kernelBlock, 1, 1), stream,
            args.AddParameter(quantizeK, Int8Views(k, scratch.K, scratch.KScale, scratch.KStats, grid.CuSeqlensK)));
        var quantizeV = new QuantizeVParams
        {
            Input = v.ToStrided(), Sequences = grid.KSequences, StatsChunks = chunks, Smooth = options.SmoothV ? 1 : 0, ElementType = type,
            PaddedHeadDim = dp, PaddedTokens = grid.KRows, Format = (int)options.VFormat,
        };
        Launch(target, QuantizeV, new LaunchDimensions(grid.KBlocks, grid.HeadsKv, grid.Batch, kernelBlock, 1, 1), stream,
            args.AddParameter(quantizeV, new Dictionary<string, DeviceView>
            {
                ["Input.Data"] = new(v.Pointer, v.ElementCount), ["Output"] = scratch.V, ["Scales"] = scratch.VScale,
                ["Means"] = scratch.VMean, ["Stats"] = scratch.VStats, ["Sequences.CuSeqlens"] = grid.CuSeqlensK,
            }));
    }

    /// <summary>The K-smoothing term of the LSE (q·k̄ · sm_scale per query row), dense or packed.</summary>
    private void EnqueueLseCorrection(PtxTarget target, IntPtr stream, in CudaPipelineGrid grid, in DeviceTensor q,
        TensorElementType elementType, float smScale, QuantizedScratch scratch, DeviceView lseCorrection, KernelArgs args)
    {
        Launch(target, LseCorrection, new LaunchDimensions((grid.QRowsPerSequence + 127) / 128, grid.HeadsQ, grid.Batch, 128, 1, 1), stream,
            args.AddParameter(q.ToStrided(), Views(("Data", q)))
                .AddView(scratch.KStats.Pointer, scratch.KStats.Length).Add(grid.Chunks).Add(grid.HeadsKv).Add(grid.KTokens)
                .Add(grid.PaddedHeadDim).Add((int)elementType).Add(smScale).AddView(lseCorrection.Pointer, lseCorrection.Length)
                .AddSequences(grid.QSequences, grid.CuSeqlensQ).AddSequences(grid.KSequences, grid.CuSeqlensK));
    }

    /// <summary>The attention kernel's buffers; a missing LSE or correction still gets a valid address (VMean), never read.</summary>
    private static Dictionary<string, DeviceView> AttentionViews(in CudaPipelineGrid grid, in DeviceTensor output, QuantizedScratch scratch,
        DeviceView? lse, DeviceView? lseCorrection) => new()
    {
        // The kernel reads INT8 Q and K as 32-bit words.
        ["Q"] = scratch.Q with { Length = scratch.Q.Length / sizeof(uint) },
        ["QScale"] = scratch.QScale,
        ["K"] = scratch.K with { Length = scratch.K.Length / sizeof(uint) },
        ["KScale"] = scratch.KScale, ["V"] = scratch.V, ["VScale"] = scratch.VScale, ["VMean"] = scratch.VMean,
        ["O"] = new(output.Pointer, output.ElementCount),
        ["Lse"] = lse ?? scratch.VMean,
        ["LseCorrection"] = lseCorrection ?? scratch.VMean,
        ["QSequences.CuSeqlens"] = grid.CuSeqlensQ, ["KSequences.CuSeqlens"] = grid.CuSeqlensK,
    };

    /// <summary>Whether an LSE is written and corrected, after checking both buffers hold <paramref name="rows"/> floats.</summary>
    private static (bool WriteLse, bool Corrected) CheckLse(long rows, DeviceView lse, DeviceView lseCorrection, bool smoothK)
    {
        bool writeLse = lse.Length > 0;
        bool corrected = writeLse && smoothK;
        if (writeLse && (lse.Pointer == IntPtr.Zero || lse.Length < rows))
            throw new ArgumentException($"lse needs {rows} floats, has {lse.Length}.", nameof(lse));
        if (corrected && (lseCorrection.Pointer == IntPtr.Zero || lseCorrection.Length < rows))
            throw new ArgumentException($"lseCorrection needs {rows} floats, has {lseCorrection.Length}.", nameof(lseCorrection));
        return (writeLse, corrected);
    }

    /// <summary>The PTX target of a device, looked up once per device.</summary>
    private PtxTarget TargetOf(int device) => _targets.GetOrAdd(device, d =>
    {
        var info = CudaDriver.GetDeviceInfo(d);
        return TargetFor(info.ComputeCapability, CudaDriver.DriverVersion());
    });

    private static void RequireFp8(PtxTarget target, int device, AttentionVariant variant)
    {
        if (variant != AttentionVariant.QkInt8PvFp16 && target.Architecture < CudaArchitecture.SM_89)
            throw new NotSupportedException(
                $"{variant} needs FP8 tensor cores (sm_89 or newer); cuda:{device} is {target.TargetName}. Use {AttentionVariant.QkInt8PvFp16}.");
    }

    /// <summary>Bits 0, 1, 2: Q, K, V start 16-byte aligned, so their kernels may read them with 16-byte loads (statistics: bits >> 1).</summary>
    private static int VectorLoads(in DeviceTensor q, in DeviceTensor k, in DeviceTensor v) =>
        (q.Pointer % 16 == 0 ? 1 : 0) | (k.Pointer % 16 == 0 ? 2 : 0) | (v.Pointer % 16 == 0 ? 4 : 0);

    /// <summary>
    /// Two launches: K and V statistics together, then Q, K and V tiles in one grid (<see cref="FusedQuantizationPlan"/>), with
    /// the scalar parameters the plan gave; the kernels' packed entries when <paramref name="grid"/> holds packed sequences.
    /// </summary>
    private void EnqueueFusedQuantization(PtxTarget target, IntPtr stream, FusedQuantizationPlan plan, KvStatsParams stats, QkvQuantizeParams p,
        in CudaPipelineGrid grid, in DeviceTensor q, in DeviceTensor k, in DeviceTensor v, QuantizedScratch scratch, KernelArgs args)
    {
        bool packed = grid.QSequences.Packed != 0;
        stats.K = k.ToStrided();
        stats.V = v.ToStrided();
        stats.Sequences = grid.KSequences;
        Launch(target, packed ? KvStatsPacked : KvStats, new LaunchDimensions(plan.StatsBlocks, 1, 1, KvStatsKernel.Threads, 1, 1), stream,
            args.AddParameter(stats, QuantizationLaunchViews.Stats(k, v, scratch, grid.CuSeqlensK)));

        p.Q = q.ToStrided();
        p.K = k.ToStrided();
        p.V = v.ToStrided();
        p.QSequences = grid.QSequences;
        p.KSequences = grid.KSequences;
        Launch(target, packed ? QuantizeQkvPacked : QuantizeQkv, new LaunchDimensions((int)plan.QuantizeItems, 1, 1, TileSlices.Threads, 1, 1),
            stream, args.AddParameter(p, QuantizationLaunchViews.Tiles("", q, k, v, scratch, grid.CuSeqlensQ, grid.CuSeqlensK)));
    }

    /// <summary>
    /// One launch (<see cref="QkvQuantizeOneLaunchKernel"/>), after zeroing its ticket
    /// and arrival counters on the same stream.
    /// </summary>
    private void EnqueueOneLaunchQuantization(PtxTarget target, IntPtr stream, AttentionShape shape, in DeviceTensor q, in DeviceTensor k,
        in DeviceTensor v, TensorElementType elementType, float smScale, SageAttentionOptions options, QuantizedScratch scratch, KernelArgs args)
    {
        var plan = FusedQuantizationPlan.For(shape, vStats: FusedQuantizationPlan.ReadsVStats(options, elementType));
        var p = plan.OneLaunchParams(shape, options, elementType, smScale, VectorLoads(q, k, v));
        p.Tiles.Q = q.ToStrided();
        p.Tiles.K = k.ToStrided();
        p.Tiles.V = v.ToStrided();
        CudaDriver.ZeroAsync(scratch.Coordination.Pointer, QkvQuantizeOneLaunchKernel.CounterCount((long)shape.Batch * shape.HeadsKv), stream);
        var views = QuantizationLaunchViews.OneLaunch(q, k, v, scratch);
        Launch(target, QuantizeOneLaunch, new LaunchDimensions((int)FusedQuantizationPlan.OneLaunchItems(shape), 1, 1, TileSlices.Threads, 1, 1),
            stream, args.AddParameter(p, views).Add(p.Tiles.PaddedHeadDim).Add(p.Tiles.ElementType).Add(p.Tiles.VFormat).Add(p.Tiles.Granularity),
            p.Tiles.PaddedHeadDim, p.Tiles.ElementType, p.Tiles.VFormat, p.Tiles.Granularity);
    }

    /// <summary>Unloads the cached modules (only when no launch is in flight).</summary>
    public void Dispose() => _launcher.Dispose();

    private void Launch(PtxTarget target, MethodInfo kernel, LaunchDimensions dims, IntPtr stream, KernelArgs args, params object[] specialized) =>
        Launch(target, kernel, dims, stream, args, null, specialized);

    /// <summary>Compiles (cached), loads and launches; <paramref name="bounds"/> gives the PTX .maxntid / .minnctapersm.</summary>
    private void Launch(PtxTarget target, MethodInfo kernel, LaunchDimensions dims, IntPtr stream, KernelArgs args, KernelSpecialization? bounds,
        object[] specialized)
    {
        var ptx = _launcher.Compiler.Compile(kernel, target, specialized, bounds);
        var loaded = _launcher.Load(ptx);
        _launcher.Launch(loaded, dims, args, stream);
        args.Clear();
    }

    private static Dictionary<string, DeviceView> Views(params (string Path, DeviceTensor Tensor)[] tensors) =>
        tensors.ToDictionary(t => t.Path, t => new DeviceView(t.Tensor.Pointer, t.Tensor.ElementCount));

    private static Dictionary<string, DeviceView> Int8Views(in DeviceTensor input, DeviceView output, DeviceView scales, DeviceView stats,
        DeviceView cuSeqlens) => new()
    {
        ["Input.Data"] = new(input.Pointer, input.ElementCount), ["Output"] = output, ["Scales"] = scales, ["Stats"] = stats,
        ["Sequences.CuSeqlens"] = cuSeqlens,
    };

    /// <summary>
    /// SAGEATTN_HOPPER_WARP_SPECIALIZED=1 runs every dense FP8-value wgmma call of this path on the warp-specialized kernel
    /// (as <see cref="SageAttentionOptions.HopperWarpSpecialized"/> does per call): a switch for benchmarks. Read once per
    /// process; a value other than 0 or 1 throws at every call.
    /// </summary>
    private static readonly Lazy<bool> HopperWarpSpecializedOverride = new(() => TuningKnob("SAGEATTN_HOPPER_WARP_SPECIALIZED", 1) == 1);

    /// <summary>
    /// SAGEATTN_HOPPER_WARPGROUPS (1..MaxWarpGroups) overrides the automatic warpgroups per block of the wgmma kernel when the options
    /// leave it at 0: a tuning knob for benchmarks (docs/hopper.md). Unset or empty means automatic. Read once per process,
    /// not per call; an invalid value throws at every call.
    /// </summary>
    private static readonly Lazy<int> HopperWarpGroupsOverride =
        new(() => TuningKnob("SAGEATTN_HOPPER_WARPGROUPS", HopperAttentionKernel.MaxWarpGroups));

    /// <summary>An integer tuning variable: 0 when unset or empty.</summary>
    /// <exception cref="ArgumentException">The variable is set to something other than 0..<paramref name="max"/>.</exception>
    private static int TuningKnob(string name, int max)
    {
        var text = Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrWhiteSpace(text))
            return 0;
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int value)
            || value > max)
            throw new ArgumentException($"{name} must be 0..{max}, got '{text}'.", name);
        return value;
    }
}
