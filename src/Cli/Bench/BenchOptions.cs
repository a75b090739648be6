using System.Globalization;
using SageAttn.Kernels.Attention;

namespace SageAttn.Cli.Bench;

/// <summary>What <c>sageattn bench</c> measures, parsed from its command line.</summary>
/// <remarks>
/// Shapes follow shared/notes/anchors.md: B = max(1, 16384 / N), H = 32 for head dim 128 and 64 for head dim 64,
/// so every shape holds the same number of tokens (at N = 32K, B = 1 doubles the work of the 16K shapes).
/// </remarks>
public sealed record BenchOptions
{
    /// <summary>Every sequence length of the full run.</summary>
    public static readonly int[] AllLengths = [1024, 2048, 4096, 8192, 16384, 32768];

    public IReadOnlyList<int> HeadDims { get; init; } = [64, 128];
    public IReadOnlyList<int> Lengths { get; init; } = AllLengths;
    public IReadOnlyList<BenchDType> DTypes { get; init; } = [BenchDType.Float16, BenchDType.BFloat16];
    public IReadOnlyList<bool> Causal { get; init; } = [false, true];
    /// <summary>The Sage variants to measure (all of <see cref="AttentionVariant"/> by default; ones the device cannot run are skipped).</summary>
    public IReadOnlyList<AttentionVariant> Variants { get; init; } = Enum.GetValues<AttentionVariant>();
    public bool Torch { get; init; } = true;
    /// <summary>Timed calls per measurement; the median is reported.</summary>
    public int Reps { get; init; } = 20;
    public int Warmup { get; init; } = 3;
    /// <summary>Different input tensor sets the timed calls rotate through, so no call finds its inputs in L2.</summary>
    public int InputSets { get; init; } = 3;
    /// <summary>Query rows per sampled head compared with float64 (two heads are sampled: the first and the last).</summary>
    public int AccuracyRows { get; init; } = 16;
    public string OutputDirectory { get; init; } = "bench-results";

    /// <summary>The help text of the options.</summary>
    public const string Usage = """
        sageattn bench [--hd 64,128] [--n 1024,...,32768] [--dtype fp16,bf16] [--causal both|on|off]
                       [--variants all|QkInt8PvFp8,...] [--no-torch] [--reps 20] [--warmup 3] [--inputs 3]
                       [--accuracy-rows 16] [--out DIR] [--quick]
          --quick: hd 128, N 1024,4096,16384, fp16 only (other options still apply after it)
        """;

    /// <summary>Parses the arguments after <c>bench</c>.</summary>
    /// <exception cref="ArgumentException">An unknown option or a bad value; ParamName is the option.</exception>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var options = new BenchOptions();
        if (args.Contains("--quick"))
            options = options with { HeadDims = [128], Lengths = [1024, 4096, 16384], DTypes = [BenchDType.Float16] };
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            if (name is "--quick")
                continue;
            if (name is "--no-torch")
            {
                options = options with { Torch = false };
                continue;
            }
            if (!name.StartsWith("--", StringComparison.Ordinal))
                throw new ArgumentException($"unexpected argument \"{name}\".\n{Usage}", name);
            if (i + 1 >= args.Count)
                throw new ArgumentException($"{name} needs a value.", name);
            string value = args[++i];
            options = name switch
            {
                "--hd" => options with { HeadDims = List(value, name, s => Positive(s, name) is var d && d is 64 or 128 ? d : throw new ArgumentException($"{name}: head dims 64 and 128 are benchmarked, got {d}.", name)) },
                "--n" => options with { Lengths = List(value, name, s => Positive(s, name)) },
                "--dtype" or "--dtypes" => options with { DTypes = List(value, name, s => DType(s, name)) },
                "--causal" => options with { Causal = CausalModes(value, name) },
                "--variants" or "--variant" => options with { Variants = value == "all" ? Enum.GetValues<AttentionVariant>() : List(value, name, s => Variant(s, name)) },
                "--reps" => options with { Reps = Positive(value, name) },
                "--warmup" => options with { Warmup = NonNegative(value, name) },
                "--inputs" => options with { InputSets = Positive(value, name) },
                "--accuracy-rows" => options with { AccuracyRows = Positive(value, name) },
                "--out" => options with { OutputDirectory = value.Length > 0 ? value : throw new ArgumentException("--out needs a folder.", name) },
                _ => throw new ArgumentException($"unknown option {name}.\n{Usage}", name),
            };
        }
        return options;
    }

    /// <summary>B = max(1, 16384 / N).</summary>
    public static int BatchFor(int n) => Math.Max(1, 16384 / n);

    /// <summary>H = 32 for head dim 128, 64 for head dim 64 (the same bytes per token).</summary>
    public static int HeadsFor(int headDim) => headDim == 64 ? 64 : 32;

    private static T[] List<T>(string value, string name, Func<string, T> parse)
    {
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (items.Length == 0)
            throw new ArgumentException($"{name} needs at least one value.", name);
        return items.Select(parse).Distinct().ToArray();
    }

    private static int Positive(string s, string name) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
            ? v : throw new ArgumentException($"{name} needs positive integers, got \"{s}\".", name);

    private static int NonNegative(string s, string name) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 0
            ? v : throw new ArgumentException($"{name} needs a non-negative integer, got \"{s}\".", name);

    private static BenchDType DType(string s, string name) => s.ToLowerInvariant() switch
    {
        "fp16" or "float16" or "half" => BenchDType.Float16,
        "bf16" or "bfloat16" => BenchDType.BFloat16,
        _ => throw new ArgumentException($"{name}: fp16 or bf16, got \"{s}\".", name),
    };

    private static bool[] CausalModes(string s, string name) => s.ToLowerInvariant() switch
    {
        "both" => [false, true],
        "on" or "yes" or "true" => [true],
        "off" or "no" or "false" => [false],
        _ => throw new ArgumentException($"{name}: both, on or off, got \"{s}\".", name),
    };

    private static AttentionVariant Variant(string s, string name) =>
        Enum.TryParse<AttentionVariant>(s, ignoreCase: true, out var v) && Enum.IsDefined(v)
            ? v : throw new ArgumentException($"{name}: one of {string.Join(", ", Enum.GetNames<AttentionVariant>())} or all, got \"{s}\".", name);
}

/// <summary>Input dtypes the benchmark runs.</summary>
public enum BenchDType
{
    Float16,
    BFloat16,
}
