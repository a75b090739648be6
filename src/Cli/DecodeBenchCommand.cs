using System.Diagnostics;
using System.Globalization;
using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// Paged decode through the TorchSharp API on CUDA tensors (the path an engine uses): time per call and the cache
/// bandwidth it reaches, for each batch size and context length.
/// </summary>
/// <remarks>
/// Decode is memory-bound: the figure of merit is bytes of K and V read per second,
/// 2 · B · ctx · Hkv · D · 2 bytes per call, against the card's memory bandwidth (about 3.35 TB/s on an H100 SXM).
/// Blocks are handed out in a random order, as in a running engine. Each measurement enqueues <c>--reps</c> calls
/// between two synchronizes and reports the mean (launch overhead included, as an engine sees it).
/// </remarks>
internal static class DecodeBenchCommand
{
    public static int Run(string[] args)
    {
        var batches = CliArgs.Ints(args, "--batch", [1, 16, 64]);
        var contexts = CliArgs.Ints(args, "--ctx", [1024, 8192, 32768]);
        int headsQ = CliArgs.Ints(args, "--heads", [32])[0];
        int headsKv = CliArgs.Ints(args, "--kv-heads", [8])[0];
        int headDim = CliArgs.Ints(args, "--dim", [128])[0];
        int blockSize = CliArgs.Ints(args, "--block", [64])[0];
        int reps = CliArgs.Ints(args, "--reps", [50])[0];
        int? splits = CliArgs.Value(args, "--splits") is string s ? int.Parse(s, CultureInfo.InvariantCulture) : null;
        string? outDir = CliArgs.Value(args, "--out");

        var source = LibTorchLoader.EnsureLoaded();
        if (!cuda.is_available())
        {
            Console.Error.WriteLine($"sageattn bench-decode: libtorch has no CUDA ({source.Description}); the benchmark measures the GPU path only.");
            return 1;
        }
        Console.WriteLine($"paged decode fp16, Hq={headsQ}, Hkv={headsKv}, D={headDim}, block {blockSize}, splits {(splits?.ToString(CultureInfo.InvariantCulture) ?? "auto")}; mean of {reps}");
        Console.WriteLine($"{"B",5} {"ctx",7} {"us/call",10} {"GB/s",9}");
        var rows = new List<string> { "batch,ctx,us_per_call,gb_per_s" };
        foreach (int batch in batches)
            foreach (int ctx in contexts)
            {
                using var scope = NewDisposeScope();
                int blocksPerSeq = (ctx + blockSize - 1) / blockSize;
                long numBlocks = (long)batch * blocksPerSeq;
                var k = randn([numBlocks, headsKv, blockSize, headDim], dtype: float16, device: CUDA);
                var v = randn([numBlocks, headsKv, blockSize, headDim], dtype: float16, device: CUDA);
                var tables = randperm(numBlocks, device: CUDA).to(int32).reshape(batch, blocksPerSeq);
                var lens = full([batch], ctx, dtype: int32, device: CUDA);
                var q = randn([batch, headsQ, headDim], dtype: float16, device: CUDA);
                for (int i = 0; i < 3; i++)
                    PagedAttention.decode(q, k, v, tables, lens, ctx, num_splits: splits).Dispose();
                cuda.synchronize();
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < reps; i++)
                    PagedAttention.decode(q, k, v, tables, lens, ctx, num_splits: splits).Dispose();
                cuda.synchronize();
                double us = watch.Elapsed.TotalMilliseconds * 1000 / reps;
                double gbPerS = 2.0 * batch * ctx * headsKv * headDim * 2 / (us * 1e-6) / 1e9;
                Console.WriteLine($"{batch,5} {ctx,7} {us,10:F1} {gbPerS,9:F0}");
                rows.Add(string.Create(CultureInfo.InvariantCulture, $"{batch},{ctx},{us:F2},{gbPerS:F1}"));
            }
        CsvOutput.Write(outDir, "bench_decode.csv", rows);
        return 0;
    }
}
