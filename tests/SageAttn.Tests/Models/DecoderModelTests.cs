using SageAttn.Backend.Engine;
using SageAttn.Models;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>
/// The model's math against an independent float64 forward written from the Hugging Face code (HfReference), on
/// tiny configs of each family loaded from HF-named weights; SDPA backend, CPU.
/// </summary>
public sealed class DecoderModelTests
{
    // fp16 keeps 11 bits, so a 2-layer model's logits stay within ~1e-3 of float64 (measured cosines: see the asserts).
    private const double SameModelCosine = 0.9995;

    public static TheoryData<ModelFamily> Families => [ModelFamily.Qwen2, ModelFamily.Qwen3, ModelFamily.Ernie45];

    [Theory]
    [MemberData(nameof(Families))]
    public void EveryPositionOfAPackedBatchMatchesTheHfReference(ModelFamily family)
    {
        var config = ModelPresets.Tiny(family);
        var weights = ModelTestKit.HfWeights(config, seed: 10 + (int)family);
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 3, ScalarType.Float32);
        using var model = HfCheckpoint.Open(dir, ScalarType.Float16, torch.CPU);
        var prompts = ModelTestKit.Prompts(config.VocabSize, 3, 41, 23);

        var logits = AllLogits(model, prompts);

        int row = 0;
        foreach (var prompt in prompts)
        {
            using var reference = HfReference.Logits(weights, config, prompt, config.InterleavedRope, config.QkNorm);
            for (int i = 0; i < prompt.Length; i++, row++)
            {
                double cosine = ModelTestKit.Cosine(logits[row], ModelTestKit.Row(reference, i));
                Assert.True(cosine >= SameModelCosine, $"{family} request of {prompt.Length}, position {i}: cosine {cosine:F6}");
            }
        }
    }

    [Fact]
    public void ErnieRopePairingReachesTheBackend()
    {
        // The same weights run with rotate-half pairing must match a rotate-half reference and differ from ERNIE's own.
        var config = ModelPresets.Tiny(ModelFamily.Ernie45);
        var weights = ModelTestKit.HfWeights(config, seed: 21);
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 1, ScalarType.Float32);
        var prompt = ModelTestKit.Prompts(config.VocabSize, 4, 48)[0];
        using var interleaved = HfCheckpoint.Open(dir, ScalarType.Float16, torch.CPU);
        using var neox = new DecoderModel(config with { InterleavedRope = false }, ScalarType.Float16, torch.CPU);
        HfCheckpoint.Load(neox, dir);
        using var interleavedReference = HfReference.Logits(weights, config, prompt, interleavedRope: true, qkNorm: false);
        using var neoxReference = HfReference.Logits(weights, config, prompt, interleavedRope: false, qkNorm: false);

        var fromInterleaved = AllLogits(interleaved, [prompt]);
        var fromNeox = AllLogits(neox, [prompt]);

        int last = prompt.Length - 1;
        Assert.True(ModelTestKit.Cosine(fromInterleaved[last], ModelTestKit.Row(interleavedReference, last)) >= SameModelCosine);
        Assert.True(ModelTestKit.Cosine(fromNeox[last], ModelTestKit.Row(neoxReference, last)) >= SameModelCosine);
        double crossed = ModelTestKit.Cosine(fromInterleaved[last], fromNeox[last]);
        Assert.True(crossed < 0.99, $"neox vs interleaved logits cosine {crossed:F5}: the RoPE style made no difference");
        // Position 0 is not rotated at all, so there both styles must agree: the difference comes from RoPE alone.
        Assert.True(ModelTestKit.Cosine(fromInterleaved[0], fromNeox[0]) >= SameModelCosine);
    }

    [Fact]
    public void Qwen3QkNormIsApplied()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen3);
        var weights = ModelTestKit.HfWeights(config, seed: 31);
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 2, ScalarType.Float32);
        using var model = HfCheckpoint.Open(dir, ScalarType.Float16, torch.CPU);
        var prompt = ModelTestKit.Prompts(config.VocabSize, 5, 40)[0];
        using var withNorm = HfReference.Logits(weights, config, prompt, interleavedRope: false, qkNorm: true);
        using var withoutNorm = HfReference.Logits(weights, config, prompt, interleavedRope: false, qkNorm: false);

        var logits = AllLogits(model, [prompt]);

        int last = prompt.Length - 1;
        Assert.True(ModelTestKit.Cosine(logits[last], ModelTestKit.Row(withNorm, last)) >= SameModelCosine);
        double without = ModelTestKit.Cosine(logits[last], ModelTestKit.Row(withoutNorm, last));
        Assert.True(without < 0.99, $"cosine {without:F5} with the reference that skips q/k norm: the norm made no difference");
    }

    [Fact]
    public void ForwardReturnsHiddenStatesPerTokenAndLogitsPerRow()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen2);
        using var model = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        RandomWeights.Initialize(model, seed: 3);
        using var backend = AttentionBackendRegistry.Create(SdpaAttentionBackend.BackendName, model.BackendConfig(maxPositions: 256));
        using var cache = new PagedKvCache(backend, 8, torch.CPU);
        using var rope = RotaryTable.For(backend.Config);
        using var meta = ForwardMeta.Create([new RequestSlot(0, 0, 9), new RequestSlot(1, 0, 4)], cache, rope);
        backend.InitAttentionMetadata(meta);
        using var random = new torch.Generator(13);
        using var ids = torch.randint(0, config.VocabSize, [13], ScalarType.Int64, generator: random);

        using var hidden = model.Forward(ids, backend, meta);
        using var rows = torch.tensor(new long[] { 8, 12 });
        using var logits = model.Logits(hidden, rows);

        Assert.Equal(new long[] { 13, config.HiddenSize }, hidden.shape);
        Assert.Equal(ScalarType.BFloat16, hidden.dtype);
        Assert.Equal(new long[] { 2, config.VocabSize }, logits.shape);
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.True(logits.isfinite().all().item<bool>());
        using var wrong = torch.zeros([12], ScalarType.Int64);
        Assert.Equal("tokenIds", Assert.Throws<ArgumentException>(() => model.Forward(wrong, backend, meta)).ParamName);
    }

    [Fact]
    public void ConstructorRejectsFloat32AndBadConfigs()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen3);
        Assert.Equal("dtype", Assert.Throws<ArgumentException>(() => new DecoderModel(config, ScalarType.Float32, torch.CPU)).ParamName);
        Assert.Equal(nameof(ModelConfig.NumKeyValueHeads),
            Assert.Throws<ArgumentException>(() => new DecoderModel(config with { NumKeyValueHeads = 3 }, ScalarType.Float16, torch.CPU)).ParamName);
    }

    [Fact]
    public void RandomWeightsAreSeededAndScaledByFanIn()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen2);
        using var a = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        using var b = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        using var c = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        RandomWeights.Initialize(a, seed: 5);
        RandomWeights.Initialize(b, seed: 5);
        RandomWeights.Initialize(c, seed: 6);

        var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var pb = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var pc = c.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, tensor) in pa)
        {
            Assert.True(ModelTestKit.Identical(tensor, pb[name]), $"{name} differs for the same seed");
            Assert.False(ModelTestKit.Identical(tensor, pc[name]), $"{name} is the same for another seed");
        }

        using var down = pa["layers.0.mlp.down_proj.weight"].to(ScalarType.Float64);
        double std = down.std().item<double>();
        Assert.InRange(std, 0.9 / Math.Sqrt(config.IntermediateSize), 1.1 / Math.Sqrt(config.IntermediateSize));
        using var gain = pa["layers.1.post_attention_layernorm.weight"].to(ScalarType.Float64);
        Assert.InRange(gain.mean().item<double>(), 0.95, 1.05);
    }

    /// <summary>Logits of every token of <paramref name="prompts"/>, run as one packed step with the SDPA backend.</summary>
    private static float[][] AllLogits(DecoderModel model, int[][] prompts)
    {
        using var scope = torch.NewDisposeScope();
        using var backend = AttentionBackendRegistry.Create(SdpaAttentionBackend.BackendName, model.BackendConfig(maxPositions: 256));
        using var cache = new PagedKvCache(backend, 16, model.Device);
        using var rope = RotaryTable.For(backend.Config, model.Device);
        using var meta = ForwardMeta.Create(prompts.Select((p, i) => new RequestSlot(i, 0, p.Length)).ToArray(), cache, rope);
        backend.InitAttentionMetadata(meta);
        var ids = torch.tensor(prompts.SelectMany(p => p.Select(t => (long)t)).ToArray());
        var hidden = model.Forward(ids, backend, meta);
        var logits = model.Logits(hidden, torch.arange(meta.TotalTokens, ScalarType.Int64));
        var flat = logits.data<float>().ToArray();
        int vocab = model.Config.VocabSize;
        return Enumerable.Range(0, meta.TotalTokens).Select(i => flat.AsSpan(i * vocab, vocab).ToArray()).ToArray();
    }
}
