using SageAttn.Backend;
using SageAttn.Cli.Bench;
using SageAttn.Kernels.Runtime;
using TorchSharp;

namespace SageAttn.Cli;

/// <summary>
/// <c>sageattn bench</c>: TOPS and accuracy of torch SDPA and every Sage variant on the same CUDA tensors, in one
/// process on one card — a table on the console (progress on stderr), and bench.csv, bench.json and bench_tops.png in
/// the output folder. Options: <see cref="BenchOptions.Usage"/>; what is measured: <see cref="GpuBench"/>.
/// </summary>
public static class BenchCommand
{
    public static int Run(string[] args) => Run(args, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected);

    /// <summary>Runs the benchmark, writing the table to <paramref name="output"/> and progress and notes to <paramref name="error"/>.</summary>
    /// <returns>0 on success, 1 when this machine has no CUDA device (nothing is written).</returns>
    /// <exception cref="ArgumentException">A bad option (ParamName names it).</exception>
    public static int Run(string[] args, TextWriter output, TextWriter error, bool interactive)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (args.Contains("--help") || args.Contains("-h"))
        {
            output.WriteLine(BenchOptions.Usage);
            return 0;
        }
        var options = BenchOptions.Parse(args);
        var source = LibTorchLoader.EnsureLoaded();
        if (!torch.cuda.is_available())
        {
            error.WriteLine($"sageattn bench: no CUDA device visible to libtorch ({source.Description}); the benchmark measures GPU kernels only. Nothing was written.");
            return 1;
        }
        if (!CudaDriver.TryInitialize(out string reason))
        {
            error.WriteLine($"sageattn bench: the CUDA driver is unavailable ({reason}). Nothing was written.");
            return 1;
        }

        using var bench = new GpuBench(options);
        var env = bench.Environment;
        output.WriteLine($"device: {env.Device} ({env.ComputeCapability}, driver {env.Driver}); libtorch: {env.LibTorch}");
        output.WriteLine($"B = 16384/N, H = 32 (hd128) / 64 (hd64); median of {options.Reps} calls after {options.Warmup} warm-ups, " +
            $"CUDA events, {options.InputSets} rotating input sets; accuracy vs float64 on {options.AccuracyRows} rows of 2 heads");
        foreach (var skipped in bench.Skipped)
            error.WriteLine($"skipped {skipped}: {env.ComputeCapability} cannot run it");

        var results = new List<BenchResult>();
        int perCausal = (options.Torch ? 1 : 0) + bench.Variants.Count;
        int steps = options.HeadDims.Count * options.Lengths.Count * options.DTypes.Count * options.Causal.Count * perCausal;
        var progress = new ProgressBar(error, steps, interactive);
        output.WriteLine(BenchTable.Header);
        Directory.CreateDirectory(options.OutputDirectory);
        foreach (var dtype in options.DTypes)
        foreach (int headDim in options.HeadDims)
        foreach (int n in options.Lengths)
        {
            bench.MeasureShape(headDim, n, dtype, progress, r =>
            {
                results.Add(r);
                progress.WriteAbove(output, BenchTable.Row(r));
            }, error);
            // Rewritten after every shape so a run cut short by a time limit still leaves its results.
            Write(options.OutputDirectory, env, options, results);
        }
        progress.Finish();
        output.WriteLine($"wrote {string.Join(", ", Files.Select(f => Path.Combine(options.OutputDirectory, f)))}");
        return 0;
    }

    /// <summary>The files a run writes into its output folder.</summary>
    public static readonly string[] Files = ["bench.csv", "bench.json", "bench_tops.png"];

    private static void Write(string directory, BenchEnvironment env, BenchOptions options, IReadOnlyList<BenchResult> results)
    {
        File.WriteAllText(Path.Combine(directory, Files[0]), BenchReport.Csv(results));
        File.WriteAllText(Path.Combine(directory, Files[1]), BenchReport.Json(env, options, results));
        if (results.Count > 0)
            File.WriteAllBytes(Path.Combine(directory, Files[2]), TopsChart.Render(results).ToPng());
    }
}
