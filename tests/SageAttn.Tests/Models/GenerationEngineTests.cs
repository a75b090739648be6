using SageAttn.Backend.Engine;
using SageAttn.Models;
using SageAttn.Models.Generation;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>The engine loop on CPU with the SDPA backend: cache consistency, greedy choice, bad input.</summary>
public sealed class GenerationEngineTests
{
    [Fact]
    public void DecodeStepsMatchAPrefillOfTheGrownSequence()
    {
        // Decoding through the paged cache must give what a fresh prefill of prompt + generated tokens gives.
        var config = ModelPresets.Tiny(ModelFamily.Qwen3);
        using var model = new DecoderModel(config, ScalarType.Float16, torch.CPU);
        RandomWeights.Initialize(model, seed: 12);
        var prompts = ModelTestKit.Prompts(config.VocabSize, 6, 70, 9);
        const int steps = 6;

        var (prefill, decode) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, steps);

        for (int r = 0; r < prompts.Length; r++)
        {
            Assert.Equal(Argmax(prefill.Logits![r]), prefill.NextTokens[r]);
            // Step s consumed token s-1 of the generated sequence (token -1 = the prefill's choice).
            int[] generated = [prefill.NextTokens[r], .. decode.Tokens[r]];
            int[] grown = [.. prompts[r], .. generated.Take(steps)];
            var (again, _) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, [grown], 1);
            double cosine = ModelTestKit.Cosine(decode.Logits![steps - 1][r], again.Logits![0]);
            Assert.True(cosine >= 0.9999, $"request {r}: decode vs re-prefill cosine {cosine:F6}");
            Assert.Equal(decode.Tokens[r][steps - 1], again.NextTokens[0]);
            for (int s = 0; s < steps; s++)
                Assert.Equal(Argmax(decode.Logits[s][r]), decode.Tokens[r][s]);
        }

        Assert.Equal(steps, decode.Steps);
        Assert.Equal(prompts.Sum(p => p.Length), prefill.Tokens);
        Assert.True(decode.TokensPerSecond > 0);
    }

    [Fact]
    public void AttentionMeasurementCountsEveryLayerOfEveryStep()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen2);
        using var model = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        RandomWeights.Initialize(model, seed: 13);
        var backend = AttentionBackendRegistry.Create(SdpaAttentionBackend.BackendName, model.BackendConfig());
        using var engine = new GenerationEngine(model, backend, maxBatch: 2, maxSequenceLength: 64);
        var prompts = ModelTestKit.Prompts(config.VocabSize, 7, 20, 30);

        var plain = engine.Prefill(prompts, keepLogits: false);
        engine.MeasureAttention = true;
        var measured = engine.Prefill(prompts);
        var decoded = engine.Decode(3);

        Assert.Null(plain.AttentionMilliseconds);
        Assert.Null(plain.Logits);
        Assert.NotNull(measured.AttentionMilliseconds);
        Assert.InRange(measured.AttentionMilliseconds!.Value, 0, measured.Milliseconds);
        Assert.InRange(decoded.AttentionMilliseconds!.Value, 0, decoded.Milliseconds);
        Assert.Equal(plain.NextTokens, measured.NextTokens);
        Assert.Equal(new[] { 23, 33 }, engine.Lengths);
    }

    [Fact]
    public void ForcedDecodeReplaysTheGivenHistory()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen2);
        using var model = new DecoderModel(config, ScalarType.Float16, torch.CPU);
        RandomWeights.Initialize(model, seed: 15);
        var prompts = ModelTestKit.Prompts(config.VocabSize, 8, 12, 30);
        var (prefill, decode) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, 4);
        var replay = GenerationAgreement.ReferenceInputs(prefill, decode);
        var other = replay.Select(r => r.Select(t => (t + 1) % config.VocabSize).ToArray()).ToArray();

        var (_, replayed) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, 4, forcedInputs: replay);
        var (_, diverted) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, 4, forcedInputs: other);

        Assert.Equal(decode.Tokens, replayed.Tokens);
        for (int r = 0; r < prompts.Length; r++)
        {
            Assert.Equal(decode.Logits![3][r], replayed.Logits![3][r]);
            double cosine = ModelTestKit.Cosine(decode.Logits[0][r], diverted.Logits![0][r]);
            Assert.True(cosine < 0.999, $"request {r}: feeding another token left the logits unchanged (cosine {cosine:F6})");
        }
    }

    [Fact]
    public void BadInputThrowsNamingTheArgument()
    {
        var config = ModelPresets.Tiny(ModelFamily.Ernie45);
        using var model = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        RandomWeights.Initialize(model, seed: 14);
        var backend = AttentionBackendRegistry.Create(SdpaAttentionBackend.BackendName, model.BackendConfig());
        using var engine = new GenerationEngine(model, backend, maxBatch: 2, maxSequenceLength: 32);

        Assert.Throws<InvalidOperationException>(() => engine.Decode(1));
        Assert.Equal("prompts", Assert.Throws<ArgumentException>(() => engine.Prefill([])).ParamName);
        Assert.Equal("prompts", Assert.Throws<ArgumentException>(() => engine.Prefill([[1], [2], [3]])).ParamName);
        Assert.Equal("prompts", Assert.Throws<ArgumentException>(() => engine.Prefill([[1, config.VocabSize]])).ParamName);
        Assert.Equal("prompts", Assert.Throws<ArgumentException>(() => engine.Prefill([[1, -1]])).ParamName);
        Assert.Equal("prompts", Assert.Throws<ArgumentException>(() => engine.Prefill([[]])).ParamName);
        Assert.Equal("prompts", Assert.Throws<ArgumentException>(() => engine.Prefill([new int[32]])).ParamName);
        engine.Prefill([new int[30]]);
        Assert.Equal("steps", Assert.Throws<ArgumentException>(() => engine.Decode(0)).ParamName);
        Assert.Equal("steps", Assert.Throws<ArgumentException>(() => engine.Decode(3)).ParamName);
        Assert.Equal("forcedInputs", Assert.Throws<ArgumentException>(() => engine.Decode(2, forcedInputs: [[1, 2], [3, 4]])).ParamName);
        Assert.Equal("forcedInputs", Assert.Throws<ArgumentException>(() => engine.Decode(2, forcedInputs: [[1]])).ParamName);
        Assert.Equal("forcedInputs", Assert.Throws<ArgumentException>(() => engine.Decode(2, forcedInputs: [[1, config.VocabSize]])).ParamName);
        Assert.Equal(2, engine.Decode(2).Steps);

        using var other = AttentionBackendRegistry.Create(SdpaAttentionBackend.BackendName, model.BackendConfig() with { KvHeads = 1 });
        Assert.Equal("backend", Assert.Throws<ArgumentException>(() => new GenerationEngine(model, other, 1, 16)).ParamName);
        var fine = AttentionBackendRegistry.Create(SdpaAttentionBackend.BackendName, model.BackendConfig(maxPositions: 16));
        Assert.Equal("maxSequenceLength", Assert.Throws<ArgumentException>(() => new GenerationEngine(model, fine, 1, 17)).ParamName);
        fine.Dispose();
    }

    private static int Argmax(float[] values) => Array.IndexOf(values, values.Max());
}
