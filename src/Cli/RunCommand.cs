using System.Globalization;
using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using SageAttn.Models.Weights;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// <c>sageattn run</c>: attention on q, k, v read from a .safetensors file, output (and LSE) written to another,
/// so results can be cross-checked against Python. Runs on CUDA when available (unless --cpu), else on the CPU accelerator.
/// </summary>
public static class RunCommand
{
    public static int Run(string[] args)
    {
        LibTorchLoader.EnsureLoaded();
        string input = CliArgs.Value(args, "--in") ?? throw new ArgumentException("--in FILE.safetensors is required.", "--in");
        string output = CliArgs.Value(args, "--out") ?? throw new ArgumentException("--out FILE.safetensors is required.", "--out");
        string layout = CliArgs.Value(args, "--layout") ?? "HND";
        bool causal = CliArgs.Flag(args, "--causal");
        bool lse = CliArgs.Flag(args, "--lse");
        double? smScale = CliArgs.Value(args, "--sm-scale") is { } s ? double.Parse(s, CultureInfo.InvariantCulture) : null;
        var settings = new SageAttentionSettings
        {
            Variant = CliArgs.Value(args, "--variant") is { } v ? CliArgs.ParseEnum<AttentionVariant>(v, "--variant") : null,
            Granularity = CliArgs.Value(args, "--granularity") is { } g ? CliArgs.ParseEnum<QuantGranularity>(g, "--granularity") : QuantGranularity.PerThread,
            SmoothK = (CliArgs.Value(args, "--smooth-k") ?? "on") switch
            {
                "on" => true,
                "off" => false,
                var other => throw new ArgumentException($"--smooth-k takes on|off, got {other}.", "--smooth-k"),
            },
            SmoothV = CliArgs.Flag(args, "--smooth-v"),
        };
        var device = !CliArgs.Flag(args, "--cpu") && torch.cuda.is_available() ? torch.CUDA : torch.CPU;

        var tensors = SafeTensorsFile.Read(input);
        try
        {
            Tensor Get(string name) => tensors.TryGetValue(name, out var t)
                ? t.to(device)
                : throw new ArgumentException($"{input} has no tensor named '{name}' (found: {string.Join(", ", tensors.Keys)}).", "--in");
            using var q = Get("q");
            using var k = Get("k");
            using var vv = Get("v");
            var results = new Dictionary<string, Tensor>();
            if (lse)
            {
                var (o, l) = SageAttention.sageattn_with_lse(q, k, vv, layout, causal, smScale, settings);
                results["out"] = o;
                results["lse"] = l;
            }
            else
            {
                results["out"] = SageAttention.sageattn(q, k, vv, layout, causal, smScale, settings);
            }

            SafeTensorsFile.Write(output, results);
            Console.WriteLine($"wrote {string.Join(", ", results.Select(r => $"{r.Key} [{string.Join(", ", r.Value.shape)}] {r.Value.dtype}"))} to {output} ({device})");
            foreach (var r in results.Values)
                r.Dispose();
            return 0;
        }
        finally
        {
            foreach (var t in tensors.Values)
                t.Dispose();
        }
    }
}
