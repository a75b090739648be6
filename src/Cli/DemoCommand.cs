using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Reference;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Quantization.Reference;

namespace SageAttn.Cli;

/// <summary>
/// A small attention problem on the best accelerator here (CUDA if present, else the CPU accelerator),
/// each variant checked against float64 attention and timed.
/// </summary>
internal static class DemoCommand
{
    public static int Run(string[] args)
    {
        bool forceCpu = CliArgs.Flag(args, "--cpu");
        using var context = AcceleratorFactory.CreateContext(includeCuda: !forceCpu);
        using var accelerator = (forceCpu ? null : AcceleratorFactory.TryCreateCuda(context)) ?? AcceleratorFactory.CreateCpu(context);
        bool gpu = accelerator.AcceleratorType == AcceleratorType.Cuda;
        int batch = 1, heads = gpu ? 8 : 2, tokens = gpu ? 2048 : 256, headDim = 128;
        Console.WriteLine($"accelerator: {accelerator.Name} ({accelerator.AcceleratorType}); problem B={batch} H={heads} N={tokens} D={headDim} fp16, causal=false");

        var runner = new SageAttentionRunner(accelerator);
        var random = new Random(2026);
        HostTensor Make(float offset) => RandomTensor(random, batch, heads, tokens, headDim, offset);
        var q = Make(0); var k = Make(8f); var v = Make(0);
        float smScale = 1f / MathF.Sqrt(headDim);
        var (exact, _) = ExactAttention.Compute(q, k, v, smScale, false, 0);

        using var qb = accelerator.Allocate1D(q.Data);
        using var kb = accelerator.Allocate1D(k.Data);
        using var vb = accelerator.Allocate1D(v.Data);
        using var ob = accelerator.Allocate1D<ushort>(q.Data.Length);
        StridedTensor View(MemoryBuffer1D<ushort, Stride1D.Dense> b) =>
            new(b.View, batch, heads, tokens, headDim, (long)heads * tokens * headDim, (long)tokens * headDim, headDim, aligned8: true);

        Console.WriteLine($"{"kernel",-34} {"rel L1",8} {"cosine",9} {"time",10}");
        foreach (var variant in Enum.GetValues<AttentionVariant>())
        {
            var options = new SageAttentionOptions { Variant = variant };
            runner.Run(View(qb), View(kb), View(vb), View(ob), TensorElementType.Float16, smScale, false, 0, default, options);
            var watch = Stopwatch.StartNew();
            runner.Run(View(qb), View(kb), View(vb), View(ob), TensorElementType.Float16, smScale, false, 0, default, options);
            var elapsed = watch.Elapsed;
            var output = ob.GetAsArray1D();
            double diff = 0, refAbs = 0, dot = 0, aa = 0, rr = 0;
            for (int i = 0; i < output.Length; i++)
            {
                double a = HalfBits.Fp16ToFloat(output[i]), r = exact[i];
                diff += Math.Abs(a - r); refAbs += Math.Abs(r); dot += a * r; aa += a * a; rr += r * r;
            }
            Console.WriteLine($"{variant,-34} {diff / refAbs,8:F4} {dot / Math.Sqrt(aa * rr),9:F6} {elapsed.TotalMilliseconds,8:F1}ms");
        }
        Console.WriteLine(gpu ? "time: end to end (quantization + attention), ILGPU CUDA accelerator"
            : "time: the CPU accelerator emulates the tensor cores exactly; it is for correctness, not speed");
        return 0;
    }

    private static HostTensor RandomTensor(Random random, int batch, int heads, int tokens, int headDim, float channelOffset)
    {
        var offsets = Enumerable.Range(0, headDim).Select(_ => channelOffset * Gaussian(random)).ToArray();
        var data = new ushort[batch * heads * tokens * headDim];
        for (int i = 0; i < data.Length; i++)
            data[i] = HalfBits.FloatToFp16(Gaussian(random) + offsets[i % headDim]);
        return new HostTensor(data, batch, heads, tokens, headDim, (long)heads * tokens * headDim, (long)tokens * headDim, headDim, TensorElementType.Float16);
    }

    internal static float Gaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
