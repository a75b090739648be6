using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Host;

/// <summary>Packed (varlen) batches through the driver API: the same pipeline, every kernel in its packed mode.</summary>
public sealed partial class CudaSageAttention
{
    /// <summary>Byte sizes of the scratch buffers a packed call of this shape and options needs.</summary>
    public static IReadOnlyList<(string Name, long Bytes)> ScratchBytes(VarlenShape shape, SageAttentionOptions options) =>
        (shape ?? throw new ArgumentNullException(nameof(shape))).Layout(options).ScratchBytes;

    /// <summary>
    /// Checks packed Q [1, Hq, Tq, D], K and V [1, Hkv, Tk, D] (a [T, H, D] tensor seen through strides), the
    /// cu_seqlens views (B + 1 int32 each) and the maxima, and returns the shape. Contents are not read.
    /// </summary>
    /// <exception cref="ArgumentException">Names the argument.</exception>
    public static VarlenShape ValidateVarlen(in DeviceTensor q, in DeviceTensor k, in DeviceTensor v,
        DeviceView cuSeqlensQ, DeviceView cuSeqlensK, int maxSeqlenQ, int maxSeqlenK)
    {
        foreach (var (t, name) in new[] { (q, nameof(q)), (k, nameof(k)), (v, nameof(v)) })
        {
            if (t.Batch != 1)
                throw new ArgumentException($"a packed tensor is one batch entry [1, H, T, D], got batch {t.Batch}.", name);
        }
        if (cuSeqlensQ.Pointer == IntPtr.Zero || cuSeqlensQ.Length < 2)
            throw new ArgumentException($"cu_seqlens_q must hold B + 1 ≥ 2 offsets at a non-null address, has {cuSeqlensQ.Length}.", "cu_seqlens_q");
        if (cuSeqlensK.Pointer == IntPtr.Zero || cuSeqlensK.Length != cuSeqlensQ.Length)
            throw new ArgumentException($"cu_seqlens_k has {cuSeqlensK.Length} offsets, cu_seqlens_q has {cuSeqlensQ.Length}; both must be B + 1.", "cu_seqlens_k");
        if (k.HeadDim != q.HeadDim || v.HeadDim != q.HeadDim)
            throw new ArgumentException($"head_dim differs: q {q.HeadDim}, k {k.HeadDim}, v {v.HeadDim}.", nameof(k));
        if (v.Heads != k.Heads || v.Tokens != k.Tokens)
            throw new ArgumentException($"v [{v.Heads} heads, {v.Tokens} tokens] must match k [{k.Heads}, {k.Tokens}].", nameof(v));
        var shape = new VarlenShape(checked((int)cuSeqlensQ.Length - 1), q.Heads, k.Heads, q.Tokens, k.Tokens, maxSeqlenQ, maxSeqlenK, q.HeadDim);
        q.CheckExtent(nameof(q));
        k.CheckExtent(nameof(k));
        v.CheckExtent(nameof(v));
        return shape;
    }

    /// <summary>
    /// Enqueues Sage attention over packed sequences on <paramref name="stream"/> and returns without waiting:
    /// sequence s has queries [cuQ[s], cuQ[s+1]) and keys [cuK[s], cuK[s+1]); O [1, Hq, Tq, D] is written through
    /// its strides, the LSE (when given) as [Hq, Tq]. One launch per kernel for the whole batch; cu_seqlens stay
    /// on the device (contents trusted and clamped, see <see cref="PackedSequences"/>).
    /// </summary>
    /// <param name="causal">Bottom-right causal mask per sequence: query i sees key j iff j ≤ i + (Lk − Lq).</param>
    /// <param name="lse">Natural-log LSE [Hq, Tq] floats, or a zero-length view for none.</param>
    /// <param name="lseCorrection">[Hq, Tq] floats of scratch; needed only when <paramref name="lse"/> is given and K smoothing is on.</param>
    /// <exception cref="ArgumentException">A size, stride, scale or buffer is wrong (the message names it).</exception>
    /// <exception cref="NotSupportedException">The variant needs an architecture the device lacks.</exception>
    /// <exception cref="CudaException">A driver call failed.</exception>
    public void EnqueueVarlen(int device, IntPtr stream, in DeviceTensor q, in DeviceTensor k, in DeviceTensor v, in DeviceTensor output,
        DeviceView cuSeqlensQ, DeviceView cuSeqlensK, int maxSeqlenQ, int maxSeqlenK,
        TensorElementType elementType, float smScale, bool causal, SageAttentionOptions options,
        QuantizedScratch scratch, DeviceView lse, DeviceView lseCorrection)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(scratch);
        var shape = ValidateVarlen(q, k, v, cuSeqlensQ, cuSeqlensK, maxSeqlenQ, maxSeqlenK);
        if (output.Batch != 1 || output.Heads != shape.HeadsQ || output.Tokens != shape.TotalQ || output.HeadDim != shape.HeadDim)
            throw new ArgumentException($"output must be [1, {shape.HeadsQ}, {shape.TotalQ}, {shape.HeadDim}] (packed).", nameof(output));
        output.CheckExtent(nameof(output));
        if (!(smScale > 0) || float.IsInfinity(smScale))
            throw new ArgumentException($"sm_scale must be positive and finite, got {smScale}.", nameof(smScale));
        var layout = shape.Layout(options);
        scratch.Check(layout);
        var (writeLse, corrected) = CheckLse(layout.LseRows, lse, lseCorrection, options.SmoothK);

        using var binding = PrimaryContextBinding.Bind(device);
        var target = TargetOf(device);
        RequireWgmmaDevice(device, options.Variant);
        RequireFp8(target, device, options.Variant);

        var grid = CudaPipelineGrid.Packed(shape, cuSeqlensQ, cuSeqlensK);
        using var args = new KernelArgs();
        // The five-launch path only when asked for; otherwise the two-launch fused path in its packed form (the one-launch
        // kernel's statistics coordination is per dense head).
        if (QuantizationPath == QuantizationPath.Separate)
            EnqueueSeparateQuantization(target, stream, grid, q, k, v, elementType, smScale, options, scratch, args);
        else
        {
            var plan = FusedQuantizationPlan.ForPacked(shape, vStats: FusedQuantizationPlan.ReadsVStats(options, elementType));
            int vector = VectorLoads(q, k, v);
            EnqueueFusedQuantization(target, stream, plan, plan.PackedStatsParams(shape, elementType, vector >> 1),
                plan.PackedQuantizeParams(shape, options, elementType, smScale, vector), grid, q, k, v, scratch, args);
        }
        if (corrected)
            EnqueueLseCorrection(target, stream, grid, q, elementType, smScale, scratch, lseCorrection, args);

        var attention = new AttentionParams
        {
            OStrideBatch = 0, OStrideHead = output.StrideHead, OStrideToken = output.StrideToken,
            HeadsQ = shape.HeadsQ, HeadsKv = shape.HeadsKv, Nq = shape.TotalQ, Nk = shape.TotalK, HeadDim = shape.HeadDim,
            NqPad = shape.QRows, NkPad = shape.KRows, Causal = causal ? 1 : 0,
            OutputType = (int)elementType, WriteLse = writeLse ? 1 : 0, SmoothV = options.SmoothV ? 1 : 0, HasLseCorrection = corrected ? 1 : 0,
            QSequences = grid.QSequences, KSequences = grid.KSequences,
            PairedOutput = AttentionParams.PairedOutputFor(output.Pointer % 4 == 0, 0, output.StrideHead, output.StrideToken),
        };
        var views = AttentionViews(grid, output, scratch, writeLse ? lse : null, corrected ? lseCorrection : null);
        if (options.Variant.IsHopper())
        {
            // Over the packed quantized tensors: batch 1, QRows / KRows padded rows per head; grid z = sequences.
            LaunchHopper(target, HopperPackedAttention, stream, args, attention, views,
                TensorMapsFor(shape, scratch, HopperAttentionKernel.ValueBytes(options.Variant)), shape.QTiles, shape.HeadsQ, shape.Batch,
                shape.PaddedHeadDim, options);
            return;
        }
        Launch(target, VarlenAttention, new LaunchDimensions(shape.QTiles, shape.HeadsQ, shape.Batch, AttentionKernel.Threads, 1, 1), stream,
            args.AddParameter(attention, views).Add((int)options.Variant).Add(shape.PaddedHeadDim),
            (int)options.Variant, shape.PaddedHeadDim);
    }
}

/// <summary>Adds a <see cref="PackedSequences"/> kernel parameter from its host fields and a device cu_seqlens view.</summary>
internal static class PackedSequencesArgs
{
    public static KernelArgs AddSequences(this KernelArgs args, PackedSequences sequences, DeviceView cuSeqlens) =>
        args.AddParameter(sequences, new Dictionary<string, DeviceView> { ["CuSeqlens"] = cuSeqlens });
}
