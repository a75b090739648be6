using System.Diagnostics;
using System.Globalization;
using SageAttn.Backend;
using SageAttn.Backend.SequenceParallel;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// Long-context prefill split across GPUs (ring attention): time of one attention of B = 1, H heads, N tokens,
/// hd 128, fp16 on 1, 2, 4… partitions, and the speed-up over one GPU. A partition count larger than the
/// device count runs several partitions per GPU (measures the split's overhead on one card), and is marked so.
/// Median of --reps calls after one warm-up, each bracketed by synchronizing every device used.
/// </summary>
public static class SequenceParallelBenchCommand
{
    /// <summary>Runs the benchmark; returns the process exit code (1 without CUDA).</summary>
    public static int Run(string[] args)
    {
        var lengths = CliArgs.Ints(args, "--n", [65536, 131072]);
        var partitionCounts = CliArgs.Ints(args, "--gpus", [1, 2, 4]);
        int reps = CliArgs.Ints(args, "--reps", [3])[0];
        int heads = CliArgs.Ints(args, "--heads", [32])[0];
        bool causal = CliArgs.Flag(args, "--causal");
        string? outDir = CliArgs.Value(args, "--out");
        if (partitionCounts.Any(p => p < 1)) throw new ArgumentException("--gpus takes positive counts.", "--gpus");
        if (reps < 1) throw new ArgumentException("--reps must be ≥ 1.", "--reps");

        LibTorchLoader.EnsureLoaded();
        if (!torch.cuda.is_available())
        {
            Console.Error.WriteLine("sageattn sp-bench: no CUDA device (or CPU-only libtorch); this benchmark measures GPUs.");
            return 1;
        }
        int devices = (int)torch.cuda.device_count();
        const int headDim = 128;
        Console.WriteLine($"sequence-parallel Sage attention: {devices} CUDA device(s); B=1, H={heads}, hd{headDim}, fp16, causal={causal}, median of {reps}");
        Console.WriteLine($"{"N",8} {"partitions",10} {"GPUs used",9} {"ms",10} {"TOPS",8} {"speed-up",9}");
        var rows = new List<string> { "n,partitions,gpus_used,causal,ms,tops,speedup" };
        foreach (int n in lengths)
        {
            torch.manual_seed(n);
            using var q = torch.randn([1, heads, n, headDim], ScalarType.Float16, torch.CUDA);
            using var k = torch.randn([1, heads, n, headDim], ScalarType.Float16, torch.CUDA);
            using var v = torch.randn([1, heads, n, headDim], ScalarType.Float16, torch.CUDA);
            double? oneGpu = null;
            foreach (int partitions in partitionCounts)
            {
                var parts = Enumerable.Range(0, partitions).Select(i => torch.device(DeviceType.CUDA, i % devices)).ToArray();
                int used = Math.Min(partitions, devices);
                double ms = Median(reps, used, () =>
                {
                    using var o = SequenceParallelAttention.sageattn_sequence_parallel(q, k, v, parts, is_causal: causal);
                });
                double tops = 4.0 * heads * (double)n * n * headDim * (causal ? 0.5 : 1.0) / (ms * 1e-3) / 1e12;
                oneGpu ??= partitions == 1 ? ms : null;
                string speedup = oneGpu is { } baseMs ? (baseMs / ms).ToString("F2", CultureInfo.InvariantCulture) : "-";
                Console.WriteLine($"{n,8} {partitions,10} {used,9} {ms,10:F2} {tops,8:F1} {speedup,9}{(partitions > devices ? "  (several partitions per GPU)" : "")}");
                rows.Add(string.Create(CultureInfo.InvariantCulture, $"{n},{partitions},{used},{causal},{ms:F3},{tops:F2},{speedup}"));
            }
        }
        CsvOutput.Write(outDir, "sequence_parallel.csv", rows);
        return 0;
    }

    private static double Median(int reps, int devices, Action call)
    {
        void SyncAll()
        {
            for (int d = 0; d < devices; d++) torch.cuda.synchronize(torch.device(DeviceType.CUDA, d));
        }
        call();
        SyncAll();
        var times = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            var watch = Stopwatch.StartNew();
            call();
            SyncAll();
            times[r] = watch.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }
}
