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
        bool writeLse = lse.Length > 0;
        bool corrected = writeLse && options.SmoothK;
        if (writeLse && (lse.Pointer == IntPtr.Zero || lse.Length < layout.LseRows))
            throw new ArgumentException($"lse needs {layout.LseRows} floats, has {lse.Length}.", nameof(lse));
        if (corrected && (lseCorrection.Pointer == IntPtr.Zero || lseCorrection.Length < layout.LseRows))
            throw new ArgumentException($"lseCorrection needs {layout.LseRows} floats, has {lseCorrection.Length}.", nameof(lseCorrection));

        using var binding = PrimaryContextBinding.Bind(device);
        var target = _targets.GetOrAdd(device, d =>
        {
            var info = CudaDriver.GetDeviceInfo(d);
            return TargetFor((info.ComputeCapabilityMajor, info.ComputeCapabilityMinor), CudaDriver.DriverVersion());
        });
        if (options.Variant != AttentionVariant.QkInt8PvFp16 && target.Architecture < CudaArchitecture.SM_89)
            throw new NotSupportedException(
                $"{options.Variant} needs FP8 tensor cores (sm_89 or newer); cuda:{device} is {target.TargetName}. Use {AttentionVariant.QkInt8PvFp16}.");

        int dp = shape.PaddedHeadDim, type = (int)elementType, chunks = shape.KStatsChunks;
        int kernelBlock = AttentionKernel.Threads;
        var qSequences = new PackedSequences { Packed = 1, TotalTokens = shape.TotalQ, MaxTokens = shape.MaxQ };
        var kSequences = new PackedSequences { Packed = 1, TotalTokens = shape.TotalK, MaxTokens = shape.MaxK };
        using var args = new KernelArgs();

        var statsDims = new LaunchDimensions(chunks, shape.HeadsKv, shape.Batch, dp, 1, 1);
        Launch(target, ChannelStats, statsDims, stream, args.AddParameter(k.ToStrided(), Views(("Data", k)))
            .AddView(scratch.KStats.Pointer, scratch.KStats.Length).Add(type).Add(dp).AddSequences(kSequences, cuSeqlensK));
        Launch(target, ChannelStats, statsDims, stream, args.AddParameter(v.ToStrided(), Views(("Data", v)))
            .AddView(scratch.VStats.Pointer, scratch.VStats.Length).Add(type).Add(dp).AddSequences(kSequences, cuSeqlensK));

        var quantizeQ = new QuantizeInt8Params
        {
            Input = q.ToStrided(), Sequences = qSequences, StatsChunks = chunks, Smooth = 0, ElementType = type, PaddedHeadDim = dp,
            PaddedTokens = shape.QRows, Granularity = (int)options.Granularity, IsKey = 0, ScaleFold = smScale * SageConstants.Log2E,
        };
        Launch(target, QuantizeInt8, new LaunchDimensions(shape.QTiles, shape.HeadsQ, shape.Batch, kernelBlock, 1, 1), stream,
            args.AddParameter(quantizeQ, Int8Views(q, scratch.Q, scratch.QScale, scratch.KStats, cuSeqlensQ)));
        var quantizeK = new QuantizeInt8Params
        {
            Input = k.ToStrided(), Sequences = kSequences, StatsChunks = chunks, Smooth = options.SmoothK ? 1 : 0, ElementType = type,
            PaddedHeadDim = dp, PaddedTokens = shape.KRows, Granularity = (int)options.Granularity, IsKey = 1, ScaleFold = 1f,
        };
        Launch(target, QuantizeInt8, new LaunchDimensions(shape.KBlocks, shape.HeadsKv, shape.Batch, kernelBlock, 1, 1), stream,
            args.AddParameter(quantizeK, Int8Views(k, scratch.K, scratch.KScale, scratch.KStats, cuSeqlensK)));
        var quantizeV = new QuantizeVParams
        {
            Input = v.ToStrided(), Sequences = kSequences, StatsChunks = chunks, Smooth = options.SmoothV ? 1 : 0, ElementType = type,
            PaddedHeadDim = dp, PaddedTokens = shape.KRows, Format = (int)options.VFormat,
        };
        Launch(target, QuantizeV, new LaunchDimensions(shape.KBlocks, shape.HeadsKv, shape.Batch, kernelBlock, 1, 1), stream,
            args.AddParameter(quantizeV, new Dictionary<string, DeviceView>
            {
                ["Input.Data"] = new(v.Pointer, v.ElementCount), ["Output"] = scratch.V, ["Scales"] = scratch.VScale,
                ["Means"] = scratch.VMean, ["Stats"] = scratch.VStats, ["Sequences.CuSeqlens"] = cuSeqlensK,
            }));

        if (corrected)
        {
            Launch(target, LseCorrection, new LaunchDimensions((shape.MaxQ + 127) / 128, shape.HeadsQ, shape.Batch, 128, 1, 1), stream,
                args.AddParameter(q.ToStrided(), Views(("Data", q)))
                    .AddView(scratch.KStats.Pointer, scratch.KStats.Length).Add(chunks).Add(shape.HeadsKv).Add(shape.TotalK)
                    .Add(dp).Add(type).Add(smScale).AddView(lseCorrection.Pointer, lseCorrection.Length)
                    .AddSequences(qSequences, cuSeqlensQ).AddSequences(kSequences, cuSeqlensK));
        }

        var attention = new AttentionParams
        {
            OStrideBatch = 0, OStrideHead = output.StrideHead, OStrideToken = output.StrideToken,
            HeadsQ = shape.HeadsQ, HeadsKv = shape.HeadsKv, Nq = shape.TotalQ, Nk = shape.TotalK, HeadDim = shape.HeadDim,
            NqPad = shape.QRows, NkPad = shape.KRows, Causal = causal ? 1 : 0,
            OutputType = type, WriteLse = writeLse ? 1 : 0, SmoothV = options.SmoothV ? 1 : 0, HasLseCorrection = corrected ? 1 : 0,
            QSequences = qSequences, KSequences = kSequences,
        };
        var attentionViews = new Dictionary<string, DeviceView>
        {
            // The kernel reads INT8 Q and K as 32-bit words.
            ["Q"] = scratch.Q with { Length = scratch.Q.Length / sizeof(uint) },
            ["QScale"] = scratch.QScale,
            ["K"] = scratch.K with { Length = scratch.K.Length / sizeof(uint) },
            ["KScale"] = scratch.KScale, ["V"] = scratch.V, ["VScale"] = scratch.VScale, ["VMean"] = scratch.VMean,
            ["O"] = new(output.Pointer, output.ElementCount),
            ["Lse"] = writeLse ? lse : scratch.VMean,
            ["LseCorrection"] = corrected ? lseCorrection : scratch.VMean,
            ["QSequences.CuSeqlens"] = cuSeqlensQ, ["KSequences.CuSeqlens"] = cuSeqlensK,
        };
        Launch(target, VarlenAttention, new LaunchDimensions(shape.QTiles, shape.HeadsQ, shape.Batch, kernelBlock, 1, 1), stream,
            args.AddParameter(attention, attentionViews).Add((int)options.Variant).Add(dp),
            (int)options.Variant, dp);
    }
}

/// <summary>Adds a <see cref="PackedSequences"/> kernel parameter from its host fields and a device cu_seqlens view.</summary>
internal static class PackedSequencesArgs
{
    public static KernelArgs AddSequences(this KernelArgs args, PackedSequences sequences, DeviceView cuSeqlens) =>
        args.AddParameter(sequences, new Dictionary<string, DeviceView> { ["CuSeqlens"] = cuSeqlens });
}
