using System.Globalization;
using SageAttn.Backend;
using SageAttn.Backend.Engine;
using SageAttn.Kernels.Runtime;
using SageAttn.Models;
using SageAttn.Models.Generation;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// <c>sageattn e2e</c>: a decoder model (real weights from a folder, or seeded random weights with a preset's real
/// shapes) run through the engine loop with each attention backend: prefill time, the attention share of it, decode
/// tokens/s, device memory, and SAGE-vs-SDPA agreement when both run.
/// </summary>
/// <remarks>
/// Per prompt length and backend: one untimed warm-up (same shapes: kernels compiled, allocator warmed), one timed
/// prefill + decode (device synchronized only before and after each phase), then one more prefill + decode with
/// every attention call bracketed by synchronizations (<see cref="GenerationEngine.MeasureAttention"/>): the
/// attention share is attention time / step time within that pass.
/// </remarks>
public static class E2eCommand
{
    /// <summary>Runs the command, reporting to standard output.</summary>
    public static int Run(string[] args) => Run(args, Console.Out);

    /// <summary>Runs the command, writing its report to <paramref name="output"/>.</summary>
    /// <exception cref="ArgumentException">A missing or malformed option (ParamName is the option).</exception>
    public static int Run(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        var source = LibTorchLoader.EnsureLoaded();
        var options = E2eOptions.Parse(args);
        bool gpu = !options.Cpu && cuda.is_available();
        var device = gpu ? CUDA : CPU;

        using var model = BuildModel(options, device);
        var config = model.Config;
        output.WriteLine($"libtorch: {source.Description}");
        output.WriteLine($"model: {options.ModelLabel} ({config.ModelType}, {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, " +
            $"{config.NumAttentionHeads} heads / {config.NumKeyValueHeads} kv heads, head_dim {config.HeadDim}, vocab {config.VocabSize}, " +
            $"{(config.InterleavedRope ? "interleaved" : "neox")} RoPE), {model.DType}, " +
            $"{(options.Weights is null ? $"random weights (seed {options.Seed})" : $"weights from {options.Weights}")}");
        output.WriteLine($"device: {(gpu ? "cuda:0" : "cpu (SAGE on the ILGPU CPU accelerator: correct, not fast)")}");
        if (gpu)
            output.WriteLine($"memory: device memory in use = total − free from the CUDA driver (cuMemGetInfo), read after each backend's runs; " +
                $"libtorch's caching allocator keeps what it reserved, so this is the running peak, cumulative over backends. After loading the model: {UsedGiB():F2} GiB");
        output.WriteLine("attn share: attention time / step time in a second pass that synchronizes around every attention call");

        foreach (int promptLength in options.PromptLengths)
        {
            var prompts = RandomPrompts(options.Batch, promptLength, config.VocabSize, options.Seed + promptLength);
            output.WriteLine();
            output.WriteLine($"prompt {promptLength} tokens x batch {options.Batch} = {promptLength * options.Batch} prefill tokens, decode {options.Decode} steps");
            output.WriteLine($"{"backend",-10} {"prefill ms",11} {"prefill tok/s",14} {"attn ms",9} {"attn share",11} {"decode ms",10} {"decode tok/s",13} {"decode attn",12} {"mem GiB",8}");
            var runs = new List<(string Name, PrefillResult Prefill, DecodeResult Decode)>();
            foreach (string backendName in options.Backends)
            {
                // With two backends, the second replays the first's tokens (teacher forcing) so every step compares the same history.
                var forced = runs.Count == 1 ? GenerationAgreement.ReferenceInputs(runs[0].Prefill, runs[0].Decode) : null;
                var (prefill, decode, timedPrefill, timedDecode) = Measure(model, backendName, prompts, options, forced);
                runs.Add((backendName, prefill, decode));
                string memory = gpu ? UsedGiB().ToString("F2", CultureInfo.InvariantCulture) : "n/a";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{backendName,-10} {prefill.Milliseconds,11:F1} {prefill.Tokens / (prefill.Milliseconds / 1000),14:F0} " +
                    $"{timedPrefill.AttentionMilliseconds,9:F1} {Share(timedPrefill.AttentionMilliseconds, timedPrefill.Milliseconds),11} " +
                    $"{decode.Milliseconds,10:F1} {decode.TokensPerSecond,13:F1} {Share(timedDecode.AttentionMilliseconds, timedDecode.Milliseconds),12} {memory,8}"));
            }

            if (runs.Count == 2)
            {
                var agreement = GenerationAgreement.Compare(runs[0].Prefill, runs[0].Decode, runs[1].Prefill, runs[1].Decode);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"agreement {runs[1].Name} vs {runs[0].Name} ({runs[1].Name} decode fed {runs[0].Name}'s tokens): " +
                    $"prefill logits cosine {agreement.PrefillCosine:F6} (lowest over requests), " +
                    $"decode logits cosine {agreement.DecodeCosine:F6} (lowest over steps and requests), " +
                    $"greedy tokens identical: {(agreement.TokensIdentical ? "yes" : "no")} ({agreement.SameDecisions} of {agreement.Decisions} choices)"));
            }
        }

        return 0;
    }

    /// <summary>Warm-up, timed run and attention-timing run of one backend on <paramref name="prompts"/>.</summary>
    private static (PrefillResult Prefill, DecodeResult Decode, PrefillResult TimedPrefill, DecodeResult TimedDecode) Measure(
        DecoderModel model, string backendName, int[][] prompts, E2eOptions options, int[][]? forcedInputs)
    {
        int maxLength = prompts.Max(p => p.Length) + options.Decode;
        var sage = options.Variant is { } variant ? new SageAttentionSettings { Variant = variant } : null;
        var backend = AttentionBackendRegistry.Create(backendName, model.BackendConfig(maxPositions: maxLength, sage: sage));
        using var engine = new GenerationEngine(model, backend, prompts.Length, maxLength);
        // Warm-up at the measured shapes: kernels compiled, cuBLAS/cuDNN plans made, allocator blocks cached.
        engine.Prefill(prompts, keepLogits: false);
        engine.Decode(Math.Min(2, options.Decode));

        var prefill = engine.Prefill(prompts);
        var decode = engine.Decode(options.Decode, keepLogits: options.Backends.Count == 2, forcedInputs);

        engine.MeasureAttention = true;
        var timedPrefill = engine.Prefill(prompts, keepLogits: false);
        var timedDecode = engine.Decode(options.Decode, forcedInputs: forcedInputs);
        return (prefill, decode, timedPrefill, timedDecode);
    }

    private static DecoderModel BuildModel(E2eOptions options, Device device)
    {
        if (options.Weights is { } directory)
            return HfCheckpoint.Open(directory, options.DType, device, options.Layers);
        var config = ModelPresets.Get(options.ModelLabel);
        if (options.Layers is { } layers)
            config = config.WithLayers(layers);
        var model = new DecoderModel(config, options.DType, device);
        RandomWeights.Initialize(model, options.Seed);
        return model;
    }

    private static int[][] RandomPrompts(int batch, int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray()).ToArray();
    }

    private static string Share(double? part, double whole) =>
        part is { } p && whole > 0 ? string.Create(CultureInfo.InvariantCulture, $"{100 * p / whole:F1}%") : "n/a";

    private static double UsedGiB()
    {
        cuda.synchronize();
        CudaDriver.EnsureContext(0);
        var (free, total) = CudaDriver.MemoryInfo();
        return (total - free) / (double)(1L << 30);
    }
}
