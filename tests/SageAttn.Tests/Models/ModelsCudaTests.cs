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

        // The rule of the CPU acceptance test (SageVsSdpaModelTests), with the gap scaled for a 100K+ vocabulary: the
        // top-2 gap of that many random logits averages ~0.2 std, so 0.1 std (still ~3x the noise between two logits)
        // marks a decisive choice, and a quarter of the choices must be decisive.
        var (decisive, _, total) = ModelTestKit.AssertFollows(sdpaPrefill, sdpaDecode, sagePrefill, sageDecode, minCosine: 0.999, decisiveGap: 0.1, preset);
        Assert.True(decisive * 4 >= total, $"{preset}: only {decisive} of {total} greedy choices were decisive");
    }
}
