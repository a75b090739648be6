using System.Diagnostics;
using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli.Bench;

/// <summary>
/// Measures torch SDPA and the Sage variants on the same TorchSharp CUDA tensors, in libtorch's context and on its
/// stream: end to end through the public API, the attention kernel alone and the quantization alone through the
/// driver path, with CUDA events around every call; and accuracy against float64 on a sample of rows.
/// </summary>
/// <remarks>
/// Timing: warm-up calls (they also compile and load the PTX), then each timed call sits between two events and is
/// waited for, so the median is a single call's GPU time (host launch gaps included, as a caller sees them). Call i
/// uses input set i mod sets, so consecutive calls read different tensors. End to end is also timed back to back
/// (<see cref="StreamCalls"/> calls between one pair of events), where the GPU does not wait for the host between calls.
/// </remarks>
public sealed class GpuBench : IDisposable
{
    private const int Device = 0;

    /// <summary>Calls per back-to-back timing run (<see cref="BenchResult.EndToEndStreamMs"/>).</summary>
    public const int StreamCalls = 10;
    private readonly BenchOptions _options;
    private readonly IntPtr _stream;
    private readonly CudaSageAttention _fused = new();
    private readonly CudaSageAttention _separate = new() { QuantizationPath = QuantizationPath.Separate };
    private readonly CudaEventTimer _timer;
    private readonly (int Major, int Minor) _capability;

    /// <summary>Binds libtorch's context on device 0 (call after torch has CUDA) and reads what the device can run.</summary>
    public GpuBench(BenchOptions options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        using (var warm = torch.zeros(1, device: CUDA)) { }
        CudaDriver.EnsureContext(Device);
        _stream = TorchInterop.CurrentCudaStream(Device);
        _timer = new CudaEventTimer();
        var info = CudaDriver.GetDeviceInfo(Device);
        _capability = info.ComputeCapability;
        Environment = new BenchEnvironment(info.Name, $"sm_{info.ComputeCapabilityMajor}{info.ComputeCapabilityMinor}",
            CudaDriver.DriverVersion().ToString(System.Globalization.CultureInfo.InvariantCulture), LibTorchLoader.EnsureLoaded().Description, DateTime.UtcNow);
        var supported = VariantSelector.Supported(_capability);
        Variants = options.Variants.Where(supported.Contains).ToArray();
        Skipped = options.Variants.Except(Variants).ToArray();
    }

    public BenchEnvironment Environment { get; }

    /// <summary>The requested variants this device can run.</summary>
    public IReadOnlyList<AttentionVariant> Variants { get; }

    /// <summary>The requested variants it cannot (reported, not measured).</summary>
    public IReadOnlyList<AttentionVariant> Skipped { get; }

    /// <summary>Measures every implementation on one (head dim, N, dtype) for each causal mode, reporting each result as it is made.</summary>
    /// <param name="notes">Where a variant that turns out not to run here is reported (it is then skipped, not fatal).</param>
    public void MeasureShape(int headDim, int n, BenchDType dtype, ProgressBar progress, Action<BenchResult> report, TextWriter notes)
    {
        ArgumentNullException.ThrowIfNull(notes);
        ArgumentNullException.ThrowIfNull(progress);
        ArgumentNullException.ThrowIfNull(report);
        int batch = BenchOptions.BatchFor(n), heads = BenchOptions.HeadsFor(headDim);
        var scalar = dtype == BenchDType.Float16 ? ScalarType.Float16 : ScalarType.BFloat16;
        using var scope = NewDisposeScope();
        manual_seed(n * 131 + headDim * 7 + (int)dtype);
        var sets = Enumerable.Range(0, _options.InputSets).Select(_ => new InputSet(
            randn(batch, heads, n, headDim, dtype: scalar, device: CUDA),
            randn(batch, heads, n, headDim, dtype: scalar, device: CUDA),
            randn(batch, heads, n, headDim, dtype: scalar, device: CUDA))).ToArray();
        // The outlier pattern K smoothing exists for: a per-channel offset of 8·randn (shared/notes/anchors.md).
        var outlierK = (sets[0].K.to(float32) + 8 * randn(1, heads, 1, headDim, device: CUDA)).to(scalar);
        var sample = new AccuracySample(sets[0], outlierK, n, headDim, _options.AccuracyRows);
        double smScale = 1.0 / Math.Sqrt(headDim);

        foreach (bool causal in _options.Causal)
        {
            var (reference, referenceOutlier) = sample.References(causal, smScale);
            string shape = $"hd{headDim} N={n} {(dtype == BenchDType.Float16 ? "fp16" : "bf16")}{(causal ? " causal" : "")}";
            if (_options.Torch)
            {
                progress.Begin($"{shape} torch SDPA");
                void Sdpa(int i) => nn.functional.scaled_dot_product_attention(sets[i].Q, sets[i].K, sets[i].V, is_casual: causal).Dispose();
                double ms = Time(Sdpa);
                double streamMs = TimeBackToBack(Sdpa);
                using var o = nn.functional.scaled_dot_product_attention(sets[0].Q, sets[0].K, sets[0].V, is_casual: causal);
                using var oo = nn.functional.scaled_dot_product_attention(sets[0].Q, outlierK, sets[0].V, is_casual: causal);
                var (relL1, cosine) = sample.Compare(o, reference);
                var (relL1Outlier, cosineOutlier) = sample.Compare(oo, referenceOutlier);
                report(new BenchResult("torch-sdpa", headDim, n, batch, heads, dtype, causal, ms, null, null, null,
                    relL1, cosine, relL1Outlier, cosineOutlier, EndToEndStreamMs: streamMs));
                progress.Step();
            }
            foreach (var variant in Variants)
            {
                progress.Begin($"{shape} {variant}");
                try
                {
                    report(MeasureVariant(variant, sets, outlierK, sample, reference, referenceOutlier, causal, dtype, smScale));
                }
                catch (NotSupportedException e)
                {
                    progress.WriteAbove(notes, $"skipped {variant} at {shape}: {e.Message}");
                }
                progress.Step();
            }
        }
    }

    private BenchResult MeasureVariant(AttentionVariant variant, InputSet[] sets, Tensor outlierK, AccuracySample sample,
        double[] reference, double[] referenceOutlier, bool causal, BenchDType dtype, double smScale)
    {
        using var variantScope = NewDisposeScope();
        var q0 = sets[0].Q;
        int batch = (int)q0.shape[0], heads = (int)q0.shape[1], n = (int)q0.shape[2], headDim = (int)q0.shape[3];
        var scalar = q0.dtype;
        var settings = new SageAttentionSettings { Variant = variant };
        var options = settings.Resolve(_capability);
        var hostMs = new List<double>();
        double e2e = Time(i =>
        {
            long start = Stopwatch.GetTimestamp();
            SageAttention.sageattn(sets[i].Q, sets[i].K, sets[i].V, is_causal: causal, options: settings).Dispose();
            hostMs.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        });
        double e2eStream = TimeBackToBack(i => SageAttention.sageattn(sets[i].Q, sets[i].K, sets[i].V, is_causal: causal, options: settings).Dispose());
        using var o = SageAttention.sageattn(sets[0].Q, sets[0].K, sets[0].V, is_causal: causal, options: settings);
        using var oo = SageAttention.sageattn(sets[0].Q, outlierK, sets[0].V, is_causal: causal, options: settings);
        var accuracy = sample.Compare(o, reference);
        var outlier = sample.Compare(oo, referenceOutlier);

        var layout = QuantizedLayout.For(new AttentionShape(batch, heads, heads, n, n, headDim), options);
        var scratch = sets.Select(_ => AllocateScratch(layout)).ToArray();
        var output = empty(batch, heads, n, headDim, dtype: scalar, device: CUDA);
        var type = dtype == BenchDType.Float16 ? TensorElementType.Float16 : TensorElementType.BFloat16;
        void Enqueue(CudaSageAttention pipeline, int i, PipelineStages stages) =>
            pipeline.Enqueue(Device, _stream, Describe(sets[i].Q), Describe(sets[i].K), Describe(sets[i].V), Describe(output), type,
                (float)smScale, causal, 0, options, scratch[i], default, default, stages);
        double quant = Time(i => Enqueue(_fused, i, PipelineStages.Quantize));
        double quantSeparate = Time(i => Enqueue(_separate, i, PipelineStages.Quantize));
        // Every set's scratch holds its fused quantization before the kernel alone is timed on it.
        for (int i = 0; i < sets.Length; i++)
            Enqueue(_fused, i, PipelineStages.Quantize);
        double kernel = Time(i => Enqueue(_fused, i, PipelineStages.Attend));
        return new BenchResult(variant.ToString(), headDim, n, batch, heads, dtype, causal, e2e, kernel, quant, quantSeparate,
            accuracy.RelL1, accuracy.Cosine, outlier.RelL1, outlier.Cosine, BenchMath.Median(hostMs), e2eStream);
    }

    /// <summary>Median GPU milliseconds of <paramref name="call"/>(input set) after the warm-up calls.</summary>
    private double Time(Action<int> call)
    {
        int sets = _options.InputSets;
        WarmUp(call);
        var samples = new double[_options.Reps];
        for (int i = 0; i < samples.Length; i++)
        {
            _timer.Start(_stream);
            call(i % sets);
            _timer.Stop();
            samples[i] = _timer.ElapsedMilliseconds();
        }
        return BenchMath.Median(samples);
    }

    /// <summary>
    /// Median GPU milliseconds per call of <see cref="StreamCalls"/> calls issued back to back between one pair of events
    /// (five such runs after a warm-up), input sets rotating as in <see cref="Time"/>.
    /// </summary>
    private double TimeBackToBack(Action<int> call)
    {
        int sets = _options.InputSets;
        WarmUp(call);
        var samples = new double[5];
        for (int s = 0; s < samples.Length; s++)
        {
            _timer.Start(_stream);
            for (int i = 0; i < StreamCalls; i++)
                call(i % sets);
            _timer.Stop();
            samples[s] = _timer.ElapsedMilliseconds() / StreamCalls;
        }
        return BenchMath.Median(samples);
    }

    /// <summary>The warm-up calls (at least one: it also compiles and loads the PTX), then a device synchronize.</summary>
    private void WarmUp(Action<int> call)
    {
        for (int i = 0; i < Math.Max(1, _options.Warmup); i++)
            call(i % _options.InputSets);
        cuda.synchronize();
    }

    /// <summary>Scratch buffers as torch byte tensors (owned by the caller's dispose scope).</summary>
    private static QuantizedScratch AllocateScratch(QuantizedLayout layout) =>
        QuantizedScratch.Allocate(layout, (_, bytes) => TorchInterop.DataPointer(empty([bytes], ScalarType.Byte, CUDA)));

    private static DeviceTensor Describe(Tensor t) => new(TorchInterop.DataPointer(t), t.numel(),
        (int)t.shape[0], (int)t.shape[1], (int)t.shape[2], (int)t.shape[3], t.stride(0), t.stride(1), t.stride(2));

    public void Dispose()
    {
        _timer.Dispose();
        _fused.Dispose();
        _separate.Dispose();
    }

    private sealed record InputSet(Tensor Q, Tensor K, Tensor V);

    /// <summary>The sampled heads and rows of input set 0 (and of the outlier K), copied to the host once per shape.</summary>
    private sealed class AccuracySample
    {
        private readonly int[] _rows;
        private readonly int _headDim;
        private readonly (int B, int H)[] _heads;
        private readonly (float[] Q, float[] K, float[] KOutlier, float[] V)[] _host;
        private readonly Tensor _rowIndex;

        public AccuracySample(InputSet set, Tensor outlierK, int n, int headDim, int rowCount)
        {
            _rows = SampledReference.Rows(n, rowCount);
            _headDim = headDim;
            int batch = (int)set.Q.shape[0], heads = (int)set.Q.shape[1];
            _heads = new[] { (0, 0), (batch - 1, heads - 1) }.Distinct().ToArray();
            _rowIndex = tensor(_rows.Select(r => (long)r).ToArray(), device: CUDA);
            _host = _heads.Select(bh => (
                Host(set.Q[bh.B, bh.H].index_select(0, _rowIndex)), Host(set.K[bh.B, bh.H]),
                Host(outlierK[bh.B, bh.H]), Host(set.V[bh.B, bh.H]))).ToArray();
        }

        /// <summary>The float64 outputs of the sampled rows for the randn inputs and for the outlier K.</summary>
        public (double[] Plain, double[] Outlier) References(bool causal, double smScale)
        {
            var plain = _host.SelectMany(h => SampledReference.Attention(h.Q, h.K, h.V, _headDim, _rows, causal, smScale)).ToArray();
            var outlier = _host.SelectMany(h => SampledReference.Attention(h.Q, h.KOutlier, h.V, _headDim, _rows, causal, smScale)).ToArray();
            return (plain, outlier);
        }

        /// <summary>Relative L1 and cosine of an output's sampled rows against <paramref name="reference"/>.</summary>
        public (double RelL1, double Cosine) Compare(Tensor output, double[] reference)
        {
            var actual = _heads.SelectMany(bh =>
            {
                using var rows = output[bh.B, bh.H].index_select(0, _rowIndex).to(float64).cpu();
                return rows.data<double>().ToArray();
            }).ToArray();
            return (BenchMath.RelativeL1(actual, reference), BenchMath.Cosine(actual, reference));
        }

        private static float[] Host(Tensor t)
        {
            using var host = t.to(float32).cpu();
            return host.data<float>().ToArray();
        }
    }
}
