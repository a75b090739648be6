using SageAttn.Backend.Engine;
using SageAttn.Models;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>
/// Real-shaped models cut to two layers on CUDA (random weights): SAGE_ATTN vs SDPA through the engine loop, the
/// acceptance bar of the tiny CPU tests (cosine ≥ 0.999, 16 identical greedy steps) at head_dim 64/128 and GQA 2/7/8.
/// </summary>
[Trait("gpu", "true")]
public sealed class ModelsCudaTests
{
    [Theory]
    [InlineData("qwen3-0.6b")]
    [InlineData("qwen2.5-0.5b")]
    [InlineData("ernie-4.5-0.3b")]
    public void SageMatchesSdpaOnATwoLayerRealShapedModel(string preset)
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
        var config = ModelPresets.Get(preset).WithLayers(2);
        using var model = new DecoderModel(config, ScalarType.BFloat16, torch.CUDA);
        RandomWeights.Initialize(model, seed: 7);
        var prompts = ModelTestKit.Prompts(config.VocabSize, 9, 1500, 333, 64, 1);
        const int steps = 16;

        var (sdpaPrefill, sdpaDecode) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, steps);
        var (sagePrefill, sageDecode) = ModelTestKit.Generate(model, SageAttentionBackend.BackendName, prompts, steps);

        for (int r = 0; r < prompts.Length; r++)
        {
            double prefill = ModelTestKit.Cosine(sagePrefill.Logits![r], sdpaPrefill.Logits![r]);
            Assert.True(prefill >= 0.999, $"{preset} request {r}: prefill logits cosine {prefill:F6}");
            Assert.Equal(sdpaPrefill.NextTokens[r], sagePrefill.NextTokens[r]);
            Assert.Equal(sdpaDecode.Tokens[r], sageDecode.Tokens[r]);
            for (int s = 0; s < steps; s++)
            {
                double decode = ModelTestKit.Cosine(sageDecode.Logits![s][r], sdpaDecode.Logits![s][r]);
                Assert.True(decode >= 0.999, $"{preset} request {r} step {s}: decode logits cosine {decode:F6}");
            }
        }
    }
}
