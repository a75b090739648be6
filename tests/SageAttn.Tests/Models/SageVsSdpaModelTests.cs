using SageAttn.Backend.Engine;
using SageAttn.Models;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>
/// Issue 5's model acceptance on tiny configs (CPU: SAGE runs on the ILGPU CPU accelerator): with the SAGE_ATTN backend
/// the logits stay within cosine 0.999 of the SDPA backend's, and 16 greedy steps choose the same tokens.
/// </summary>
public sealed class SageVsSdpaModelTests
{
    private const int Steps = 16;

    [Theory]
    [InlineData(ModelFamily.Qwen2)]
    [InlineData(ModelFamily.Qwen3)]
    [InlineData(ModelFamily.Ernie45)]
    public void SageMatchesSdpaLogitsAndGreedyTokens(ModelFamily family)
    {
        var config = ModelPresets.Tiny(family);
        using var model = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        RandomWeights.Initialize(model, seed: 100 + (int)family);
        // A long prompt (several KV blocks, not a block multiple), a medium one and a short one in one batch.
        var prompts = ModelTestKit.Prompts(config.VocabSize, 50 + (int)family, 150, 47, 5);

        var (sdpaPrefill, sdpaDecode) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, Steps);
        var (sagePrefill, sageDecode) = ModelTestKit.Generate(model, SageAttentionBackend.BackendName, prompts, Steps);

        for (int r = 0; r < prompts.Length; r++)
        {
            double prefill = ModelTestKit.Cosine(sagePrefill.Logits![r], sdpaPrefill.Logits![r]);
            Assert.True(prefill >= 0.999, $"{family} request {r}: prefill logits cosine {prefill:F6}");
            Assert.Equal(sdpaPrefill.NextTokens[r], sagePrefill.NextTokens[r]);
            Assert.Equal(sdpaDecode.Tokens[r], sageDecode.Tokens[r]);
            for (int s = 0; s < Steps; s++)
            {
                double decode = ModelTestKit.Cosine(sageDecode.Logits![s][r], sdpaDecode.Logits![s][r]);
                Assert.True(decode >= 0.999, $"{family} request {r} step {s}: decode logits cosine {decode:F6}");
            }
        }
    }
}
