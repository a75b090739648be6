using System.Diagnostics;
using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// <c>sageattn demo</c>: attention through the TorchSharp API, as an application would call it. On a CUDA machine
/// a larger problem on CUDA tensors, each variant timed next to torch's own SDPA; elsewhere (or with --cpu) a small
/// problem on CPU tensors, which run the same kernels on ILGPU's CPU accelerator. Accuracy is against float32 SDPA.
/// </summary>
public static class DemoCommand
{
    public static int Run(string[] args) => Run(args, Console.Out);

    /// <summary>Runs the demo, writing its report to <paramref name="output"/>.</summary>
    public static int Run(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var source = LibTorchLoader.EnsureLoaded();
        bool gpu = !CliArgs.Flag(args, "--cpu") && cuda.is_available();
        var device = gpu ? CUDA : CPU;
        long batch = gpu ? 4 : 1, heads = gpu ? 32 : 2, tokens = gpu ? 4096 : 256, headDim = 128;
        output.WriteLine($"libtorch: {source.Description}");
        output.WriteLine($"device: {(gpu ? "cuda:0" : "cpu (ILGPU CPU accelerator: correct, not fast)")}; " +
            $"q/k/v [{batch}, {heads}, {tokens}, {headDim}] fp16 randn, K with outlier channels (+8·randn per channel)");

        using var scope = NewDisposeScope();
        manual_seed(2026);
        var q = randn(batch, heads, tokens, headDim, dtype: float16, device: device);
        var k = (randn(batch, heads, tokens, headDim, device: device) + 8 * randn(headDim, device: device)).to(float16);
        var v = randn(batch, heads, tokens, headDim, dtype: float16, device: device);
        var reference = nn.functional.scaled_dot_product_attention(q.to(float32), k.to(float32), v.to(float32));

        output.WriteLine($"{"kernel",-26} {"rel L1",8} {"cosine",9} {"time",10}");
        // On a GPU, the variants it can run (the wgmma ones need sm_90); the CPU accelerator emulates them all.
        IReadOnlyList<AttentionVariant> variants = Enum.GetValues<AttentionVariant>();
        if (gpu)
        {
            var info = Kernels.Runtime.CudaDriver.GetDeviceInfo(0);
            variants = VariantSelector.Supported(info.ComputeCapability);
        }
        foreach (var variant in variants)
        {
            var settings = new SageAttentionSettings { Variant = variant };
            // The CPU accelerator emulates the kernels (correct, not fast): its one call is the timing, so the demo
            // runs each variant once instead of three times.
            var watch = Stopwatch.StartNew();
            var result = SageAttention.sageattn(q, k, v, options: settings);
            double ms = watch.Elapsed.TotalMilliseconds;
            var (relL1, cosine) = Compare(result, reference);
            if (gpu)
                ms = Time(20, () => SageAttention.sageattn(q, k, v, options: settings).Dispose());
            output.WriteLine($"{variant,-26} {relL1,8:F4} {cosine,9:F6} {ms,8:F3}ms");
        }
        if (gpu)
        {
            var torchOut = nn.functional.scaled_dot_product_attention(q, k, v);
            var (relL1, cosine) = Compare(torchOut, reference);
            double ms = Time(20, () => nn.functional.scaled_dot_product_attention(q, k, v).Dispose());
            output.WriteLine($"{"torch SDPA (fp16)",-26} {relL1,8:F4} {cosine,9:F6} {ms,8:F3}ms");
        }
        output.WriteLine(gpu
            ? "time: mean per call, end to end (quantization included); `sageattn bench` for the full table"
            : "time: one call on the CPU accelerator's emulation, kernel compilation included (not a speed figure)");
        return 0;
    }

    private static (double RelL1, double Cosine) Compare(Tensor actual, Tensor reference)
    {
        using var a = actual.to(float64);
        using var r = reference.to(float64);
        double relL1 = (a - r).abs().sum().item<double>() / r.abs().sum().item<double>();
        double cosine = (a * r).sum().item<double>() / Math.Sqrt((a * a).sum().item<double>() * (r * r).sum().item<double>());
        return (relL1, cosine);
    }

    /// <summary>Mean milliseconds per call on the GPU after one warm-up, synchronizing the device around the timed calls.</summary>
    private static double Time(int reps, Action call)
    {
        call();
        cuda.synchronize();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++)
            call();
        cuda.synchronize();
        return watch.Elapsed.TotalMilliseconds / reps;
    }
}
