using System.Diagnostics;
using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// torch's own scaled_dot_product_attention through TorchSharp (libtorch picks its backend: cuDNN on the H100), on
/// the benchmark's shapes and card: the baseline a TorchSharp user already has.
/// </summary>
/// <remarks>
/// It runs before the Sage kernels create ILGPU's CUDA context, so libtorch works in its primary context alone.
/// Each repetition is bracketed by torch.cuda.synchronize; the median is reported.
/// </remarks>
internal static class TorchSdpaBaseline
{
    /// <summary>Median milliseconds per (N, causal), or an empty list when TorchSharp has no CUDA here.</summary>
    public static IReadOnlyList<(int N, bool Causal, double Ms)> Measure(IEnumerable<int> lengths, int heads, int headDim, int reps, TextWriter log)
    {
        var results = new List<(int, bool, double)>();
        var source = LibTorchLoader.EnsureLoaded();
        if (!cuda.is_available())
        {
            log.WriteLine($"torch SDPA baseline skipped: libtorch has no CUDA ({source.Description})");
            return results;
        }
        foreach (int n in lengths)
        {
            using var scope = NewDisposeScope();
            long batch = Math.Max(1, 16384 / n);
            var q = randn(batch, heads, n, headDim, dtype: float16, device: CUDA);
            var k = randn(batch, heads, n, headDim, dtype: float16, device: CUDA);
            var v = randn(batch, heads, n, headDim, dtype: float16, device: CUDA);
            foreach (bool causal in new[] { false, true })
            {
                for (int i = 0; i < 3; i++)
                    nn.functional.scaled_dot_product_attention(q, k, v, is_casual: causal).Dispose();
                var times = new double[reps];
                for (int i = 0; i < reps; i++)
                {
                    cuda.synchronize();
                    var watch = Stopwatch.StartNew();
                    nn.functional.scaled_dot_product_attention(q, k, v, is_casual: causal).Dispose();
                    cuda.synchronize();
                    times[i] = watch.Elapsed.TotalMilliseconds;
                }
                Array.Sort(times);
                results.Add((n, causal, times[reps / 2]));
            }
        }
        return results;
    }
}
