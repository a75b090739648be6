using System.Globalization;
using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// Throughput through the driver-API path that sageattn uses for CUDA tensors (<see cref="CudaSageAttention"/> on
/// libtorch's stream), the only path that can run <see cref="AttentionVariant.HopperQkInt8PvFp8"/> (sm_90a PTX).
/// Shapes as <c>bench</c>: hd128 fp16 randn, B = 16384 / N, H = 32; TOPS = 4·B·H·N²·D / time, halved for causal.
/// Kernel only (the attention kernel on already quantized scratch) and end to end (statistics, quantization,
/// attention); each the median of CUDA-event timings around single calls after 3 warm-ups.
/// </summary>
internal static class DriverBenchCommand
{
    public static int Run(string[] args)
    {
        var lengths = CliArgs.Ints(args, "--n", [4096, 16384]);
        int reps = CliArgs.Ints(args, "--reps", [20])[0];
        string? outDir = CliArgs.Value(args, "--out");
        const int heads = 32, headDim = 128;
        LibTorchLoader.EnsureLoaded();
        if (!cuda.is_available())
        {
            Console.Error.WriteLine("sageattn bench-driver: libtorch has no CUDA device here.");
            return 1;
        }
        var info = CudaDriver.GetDeviceInfo(0);
        var variants = VariantSelector.Supported((info.ComputeCapabilityMajor, info.ComputeCapabilityMinor));
        Console.WriteLine($"device: {info.Name} (sm_{info.ComputeCapabilityMajor}{info.ComputeCapabilityMinor}); driver path; hd128 fp16, B=16384/N, H=32; median of {reps}");
        Console.WriteLine($"{"variant",-24} {"N",6} {"causal",6} {"kernel ms",10} {"e2e ms",9} {"kernel TOPS",12} {"e2e TOPS",9}");
        var rows = new List<string> { "variant,n,causal,kernel_ms,end_to_end_ms,kernel_tops,end_to_end_tops" };
        using var pipeline = new CudaSageAttention();
        // libtorch's primary context must be current on this thread for the timing events.
        using var binding = PrimaryContextBinding.Bind(0);
        using var timer = new CudaEventTimer();
        var stream = TorchInterop.CurrentCudaStream(0);
        foreach (int n in lengths)
        {
            using var scope = NewDisposeScope();
            int batch = Math.Max(1, 16384 / n);
            var q = randn(batch, heads, n, headDim, dtype: float16, device: CUDA);
            var k = randn(batch, heads, n, headDim, dtype: float16, device: CUDA);
            var v = randn(batch, heads, n, headDim, dtype: float16, device: CUDA);
            var o = empty(batch, heads, n, headDim, dtype: float16, device: CUDA);
            var (dq, dk, dv, dout) = (Describe(q), Describe(k), Describe(v), Describe(o));
            var shape = CudaSageAttention.Validate(dq, dk, dv);
            float smScale = 1f / MathF.Sqrt(headDim);
            foreach (var variant in variants)
            {
                var options = new SageAttentionOptions { Variant = variant };
                var buffers = new List<Tensor>();
                var scratch = QuantizedScratch.Allocate(QuantizedLayout.For(shape, options), (_, bytes) =>
                {
                    var t = empty([bytes], ScalarType.Byte, CUDA);
                    buffers.Add(t);
                    return TorchInterop.DataPointer(t);
                });
                foreach (bool causal in new[] { false, true })
                {
                    double Time(bool attentionOnly) => Median(timer, stream, reps, () => pipeline.Enqueue(0, stream, dq, dk, dv, dout,
                        TensorElementType.Float16, smScale, causal, 0, options, scratch, default, default, attentionOnly));
                    double endToEnd = Time(false), kernel = Time(true);
                    double flops = 4.0 * batch * heads * (double)n * n * headDim * (causal ? 0.5 : 1.0);
                    double kTops = flops / (kernel * 1e-3) / 1e12, eTops = flops / (endToEnd * 1e-3) / 1e12;
                    Console.WriteLine($"{variant,-24} {n,6} {causal,6} {kernel,10:F3} {endToEnd,9:F3} {kTops,12:F1} {eTops,9:F1}");
                    rows.Add(string.Create(CultureInfo.InvariantCulture, $"{variant},{n},{causal},{kernel:F4},{endToEnd:F4},{kTops:F2},{eTops:F2}"));
                }
                foreach (var t in buffers)
                    t.Dispose();
            }
        }
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllLines(Path.Combine(outDir, "bench_driver.csv"), rows);
        }
        return 0;
    }

    private static DeviceTensor Describe(Tensor t) =>
        new(TorchInterop.DataPointer(t), t.numel(), (int)t.shape[0], (int)t.shape[1], (int)t.shape[2], (int)t.shape[3],
            t.shape[1] * t.shape[2] * t.shape[3], t.shape[2] * t.shape[3], t.shape[3]);

    /// <summary>Median milliseconds of <paramref name="action"/> (enqueued on <paramref name="stream"/>) between CUDA events.</summary>
    private static double Median(CudaEventTimer timer, IntPtr stream, int reps, Action action)
    {
        for (int i = 0; i < 3; i++) action();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            timer.Start(stream);
            action();
            timer.Stop();
            times[i] = timer.ElapsedMilliseconds();
        }
        Array.Sort(times);
        return times[reps / 2];
    }
}
