using System.Diagnostics;
using System.Globalization;
using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;

namespace SageAttn.Cli;

/// <summary>
/// Throughput of each variant on the CUDA accelerator: hd128, B = 16384 / N, H = 32 (the shapes of
/// shared/notes/anchors.md), kernel only and end to end (quantization included), non-causal and causal.
/// TOPS = 4·B·H·N²·D / time, halved for causal. Median of the repetitions after warm-up; each repetition
/// is bracketed by device synchronization. torch's own SDPA (through TorchSharp) is measured first on the same
/// shapes, in the same process and card, unless --no-torch.
/// </summary>
internal static class BenchCommand
{
    public static int Run(string[] args)
    {
        var lengths = CliArgs.Ints(args, "--n", [1024, 4096, 16384]);
        int reps = CliArgs.Ints(args, "--reps", [20])[0];
        string? outDir = CliArgs.Value(args, "--out");
        const int heads = 32, headDim = 128;
        var baseline = CliArgs.Flag(args, "--no-torch") ? [] : TorchSdpaBaseline.Measure(lengths, heads, headDim, reps, Console.Out);
        using var context = AcceleratorFactory.CreateContext(includeCuda: true);
        using var accelerator = AcceleratorFactory.TryCreateCuda(context);
        if (accelerator is null)
        {
            Console.Error.WriteLine("sageattn bench: no CUDA device; the benchmark measures GPU kernels only.");
            return 1;
        }
        Console.WriteLine($"device: {accelerator.Name}; hd128 fp16, B=16384/N, H=32; median of {reps}");
        var runner = new SageAttentionRunner(accelerator);
        var rows = new List<string> { "variant,n,causal,kernel_ms,end_to_end_ms,kernel_tops,end_to_end_tops" };
        Console.WriteLine($"{"variant",-24} {"N",6} {"causal",6} {"kernel ms",10} {"e2e ms",9} {"kernel TOPS",12} {"e2e TOPS",9}");
        foreach (var (n, causal, ms) in baseline)
        {
            double tops = 4.0 * Math.Max(1, 16384 / n) * heads * (double)n * n * headDim * (causal ? 0.5 : 1.0) / (ms * 1e-3) / 1e12;
            Console.WriteLine($"{"torch SDPA (TorchSharp)",-24} {n,6} {causal,6} {ms,10:F3} {ms,9:F3} {tops,12:F1} {tops,9:F1}");
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"torch-sdpa,{n},{causal},{ms:F4},{ms:F4},{tops:F2},{tops:F2}"));
        }
        foreach (int n in lengths)
        {
            int batch = Math.Max(1, 16384 / n);
            long elements = (long)batch * heads * n * headDim;
            var random = new Random(n);
            var host = new ushort[elements];
            for (long i = 0; i < elements; i++) host[i] = HalfBits.FloatToFp16(Gaussian(random));
            using var qb = accelerator.Allocate1D(host);
            using var kb = accelerator.Allocate1D(host);
            using var vb = accelerator.Allocate1D(host);
            using var ob = accelerator.Allocate1D<ushort>(elements);
            StridedTensor View(MemoryBuffer1D<ushort, Stride1D.Dense> b) =>
                new(b.View, batch, heads, n, headDim, (long)heads * n * headDim, (long)n * headDim, headDim, aligned8: true);
            var (q, k, v, o) = (View(qb), View(kb), View(vb), View(ob));
            var shape = SageAttentionRunner.Validate(q, k, v);
            float smScale = 1f / MathF.Sqrt(headDim);
            // The Hopper wgmma kernel needs sm_90a PTX, which ILGPU's accelerator cannot load: see bench-driver.
            foreach (var variant in Enum.GetValues<AttentionVariant>().Where(v => v != AttentionVariant.HopperQkInt8PvFp8))
            {
                using var quantized = runner.AllocateQuantized(shape, new SageAttentionOptions { Variant = variant });
                foreach (bool causal in new[] { false, true })
                {
                    double kernel = Median(accelerator, reps, () =>
                        runner.Attend(quantized, q, o, TensorElementType.Float16, smScale, causal, 0, default),
                        () => runner.QuantizeInto(quantized, q, k, v, TensorElementType.Float16, smScale));
                    double endToEnd = Median(accelerator, reps, () =>
                    {
                        runner.QuantizeInto(quantized, q, k, v, TensorElementType.Float16, smScale);
                        runner.Attend(quantized, q, o, TensorElementType.Float16, smScale, causal, 0, default);
                    }, null);
                    double flops = 4.0 * batch * heads * (double)n * n * headDim * (causal ? 0.5 : 1.0);
                    double kTops = flops / (kernel * 1e-3) / 1e12, eTops = flops / (endToEnd * 1e-3) / 1e12;
                    Console.WriteLine($"{variant,-24} {n,6} {causal,6} {kernel,10:F3} {endToEnd,9:F3} {kTops,12:F1} {eTops,9:F1}");
                    rows.Add(string.Create(CultureInfo.InvariantCulture, $"{variant},{n},{causal},{kernel:F4},{endToEnd:F4},{kTops:F2},{eTops:F2}"));
                }
            }
        }
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllLines(Path.Combine(outDir, "bench_sage.csv"), rows);
        }
        return 0;
    }

    private static float Gaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    /// <summary>Median milliseconds of <paramref name="action"/> over <paramref name="reps"/> runs after 3 warm-ups.</summary>
    private static double Median(Accelerator accelerator, int reps, Action action, Action? prepare)
    {
        prepare?.Invoke();
        for (int i = 0; i < 3; i++) action();
        accelerator.Synchronize();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var watch = Stopwatch.StartNew();
            action();
            accelerator.Synchronize();
            times[i] = watch.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }
}
