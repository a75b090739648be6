using SageAttn.Backend;
using SageAttn.Backend.Engine;
using SageAttn.Kernels.Attention;
using SageAttn.Models;
using SageAttn.Models.Generation;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>
/// Issue 5's model acceptance on tiny configs (CPU: SAGE runs on the ILGPU CPU accelerator): with the SAGE_ATTN backend
/// every logits vector of a 16-step greedy decode stays within cosine 0.999 of the SDPA backend's, and the greedy
/// choices agree.
/// </summary>
/// <remarks>
/// <para>SAGE's decode replays SDPA's tokens (teacher forcing), so each step compares the same history. Free-running
/// identity over 16 steps is not a sound test on random weights: their next-token distributions are nearly flat, the
/// top-2 gap is below 3 % of the logits' spread in about one choice in ten (bf16 logits even tie exactly), while SAGE
/// moves logits by up to ~0.08 std (measured with FP16 P·V). So a choice must agree wherever the reference's top-2
/// gap exceeds 0.2 std — 2.5x the largest difference seen — and at least half of the choices must be that decisive,
/// so the check cannot pass empty. The literal free-running check (identical tokens for 16 steps, no teacher forcing)
/// runs on tiny models trained to predict decisively: <see cref="TrainedModelGreedyTests"/>.</para>
/// <para>Variant: QkInt8PvFp16, what the backend picks on the H100 (sm90). The FP8 P·V variant (the CPU default) stays
/// near cosine 0.997–0.999 on these tiny models: `sageattn e2e` reports it.</para>
/// </remarks>
public sealed class SageVsSdpaModelTests
{
    private const int Steps = 16;

    [Theory]
    [InlineData(ModelFamily.Qwen2)]
    [InlineData(ModelFamily.Qwen3)]
    [InlineData(ModelFamily.Ernie45)]
    public void SageFollowsSdpaForSixteenGreedySteps(ModelFamily family)
    {
        var config = ModelPresets.Tiny(family);
        using var model = new DecoderModel(config, ScalarType.Float16, torch.CPU);
        // Random weights leave some models flat: with seed 100 (head_dim 64) Qwen3 had 14 of 34 decisive choices, below the
        // floor below; seeds 200 and 300 gave 19-25 for every family.
        RandomWeights.Initialize(model, seed: 200 + (int)family);
        // Two requests in one batch: one spanning two KV blocks (not a block multiple), one short.
        var prompts = ModelTestKit.Prompts(config.VocabSize, 50 + (int)family, 70, 5);
        var sage = new SageAttentionSettings { Variant = AttentionVariant.QkInt8PvFp16 };

        var (sdpaPrefill, sdpaDecode) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, Steps);
        var (sagePrefill, sageDecode) = ModelTestKit.Generate(model, SageAttentionBackend.BackendName, prompts, Steps, sage,
            GenerationAgreement.ReferenceInputs(sdpaPrefill, sdpaDecode));

        var (decisive, _, total) = ModelTestKit.AssertFollows(sdpaPrefill, sdpaDecode, sagePrefill, sageDecode, minCosine: 0.999, decisiveGap: 0.2, $"{family}");
        Assert.True(decisive * 2 >= total, $"{family}: only {decisive} of {total} greedy choices were decisive");
    }
}
