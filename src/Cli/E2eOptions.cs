using System.Globalization;
using SageAttn.Backend.Engine;
using SageAttn.Kernels.Attention;
using SageAttn.Models;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>The options of <c>sageattn e2e</c>, parsed and checked.</summary>
internal sealed record E2eOptions
{
    /// <summary>The preset name, or the weights folder's name when only --weights is given.</summary>
    public required string ModelLabel { get; init; }

    /// <summary>A Hugging Face model folder (config.json + safetensors), or null for random weights.</summary>
    public string? Weights { get; init; }

    /// <summary>Registry names of the backends to run, SDPA (the reference) first.</summary>
    public required IReadOnlyList<string> Backends { get; init; }

    /// <summary>Prompt lengths to measure, each in its own batch.</summary>
    public required IReadOnlyList<int> PromptLengths { get; init; }

    /// <summary>Requests per batch.</summary>
    public required int Batch { get; init; }

    /// <summary>Decode steps.</summary>
    public required int Decode { get; init; }

    /// <summary>Keep only the first layers, or null for all.</summary>
    public int? Layers { get; init; }

    /// <summary>Float16 or BFloat16.</summary>
    public required ScalarType DType { get; init; }

    /// <summary>Run on CPU tensors even when CUDA is available.</summary>
    public bool Cpu { get; init; }

    /// <summary>Seed of the random weights and prompts.</summary>
    public int Seed { get; init; }

    /// <summary>The Sage backend's kernel variant (prefill and dense fallbacks); null picks by device.</summary>
    public AttentionVariant? Variant { get; init; }

    public static E2eOptions Parse(string[] args)
    {
        string? weights = CliArgs.Value(args, "--weights");
        string? model = CliArgs.Value(args, "--model");
        if (model is null && weights is null)
            throw new ArgumentException($"--model NAME (one of {string.Join(", ", ModelPresets.Names)}) or --weights DIR is required.", "--model");
        if (model is not null && weights is null && !ModelPresets.Names.Contains(model.ToLowerInvariant()))
            throw new ArgumentException($"--model {model} is not a preset; known: {string.Join(", ", ModelPresets.Names)} (or give --weights DIR).", "--model");
        if (weights is not null && !Directory.Exists(weights))
            throw new ArgumentException($"--weights {weights}: no such folder.", "--weights");
        var backends = (CliArgs.Value(args, "--backend") ?? "both").ToLowerInvariant() switch
        {
            "sage" => new[] { SageAttentionBackend.BackendName },
            "sdpa" => [SdpaAttentionBackend.BackendName],
            "both" => [SdpaAttentionBackend.BackendName, SageAttentionBackend.BackendName],
            var other => throw new ArgumentException($"--backend takes sage|sdpa|both, got {other}.", "--backend"),
        };
        var dtype = (CliArgs.Value(args, "--dtype") ?? "bf16").ToLowerInvariant() switch
        {
            "bf16" => ScalarType.BFloat16,
            "fp16" => ScalarType.Float16,
            var other => throw new ArgumentException($"--dtype takes bf16|fp16, got {other}.", "--dtype"),
        };
        var prompts = PositiveInts(args, "--prompt", [512]);
        int? layers = CliArgs.Value(args, "--layers") is null ? null : PositiveInts(args, "--layers", [])[0];
        return new E2eOptions
        {
            ModelLabel = model ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(weights!)),
            Weights = weights,
            Backends = backends,
            PromptLengths = prompts,
            Batch = PositiveInts(args, "--batch", [1])[0],
            Decode = PositiveInts(args, "--decode", [16])[0],
            Layers = layers,
            DType = dtype,
            Cpu = CliArgs.Flag(args, "--cpu"),
            Variant = CliArgs.Value(args, "--variant") is { } variant
                ? CliArgs.ParseEnum<AttentionVariant>(variant, "--variant")
                : null,
            Seed = CliArgs.Value(args, "--seed") is { } seed
                ? int.TryParse(seed, NumberStyles.None, CultureInfo.InvariantCulture, out int s) ? s : throw new ArgumentException($"--seed takes a non-negative integer, got {seed}.", "--seed")
                : 0,
        };
    }

    private static int[] PositiveInts(string[] args, string name, int[] fallback)
    {
        int[] values;
        try
        {
            values = CliArgs.Ints(args, name, fallback);
        }
        catch (FormatException)
        {
            throw new ArgumentException($"{name} takes positive integers (comma-separated where several), got {CliArgs.Value(args, name)}.", name);
        }

        if (values.Length == 0 || values.Any(v => v <= 0))
            throw new ArgumentException($"{name} takes positive integers, got {CliArgs.Value(args, name)}.", name);
        return values;
    }
}
