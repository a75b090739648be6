using SageAttn.Backend.Engine;
using SageAttn.Models;
using SageAttn.Models.Generation;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>
/// Real-shaped models cut to two layers on CUDA (random weights): SAGE_ATTN vs SDPA through the engine loop, the
/// acceptance bar of the tiny CPU tests (cosine ≥ 0.999 on every step of a 16-step teacher-forced decode, decisive
/// greedy choices identical) at head_dim 64/128 and GQA 2/7/8, with the variant the device picks.
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
        var (sagePrefill, sageDecode) = ModelTestKit.Generate(model, SageAttentionBackend.BackendName, prompts, steps,
            forcedInputs: GenerationAgreement.ReferenceInputs(sdpaPrefill, sdpaDecode));

        // Same rule as the CPU acceptance test (SageVsSdpaModelTests): cosine on every step, tokens where decisive.
        var (decisive, _, total) = ModelTestKit.AssertFollows(sdpaPrefill, sdpaDecode, sagePrefill, sageDecode, minCosine: 0.999, decisiveGap: 0.2, preset);
        Assert.True(decisive * 2 >= total, $"{preset}: only {decisive} of {total} greedy choices were decisive");
    }
}
