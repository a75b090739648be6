using SageAttn.Backend.Engine;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>
/// The SDPA reference backend against float64 attention written from the formula (no cache involved): prefills,
/// chunked prefills after a cached prefix, decodes and a one-token prompt in mixed steps, GQA 2 and 7, both RoPE styles.
/// </summary>
public sealed class SdpaAttentionBackendTests
{
    public static TheoryData<int, int, string, double?> Configs => new()
    {
        // H, Hkv, RoPE style, sm_scale
        { 4, 2, nameof(RopeStyle.Neox), null },
        { 7, 1, nameof(RopeStyle.Interleaved), null },
        { 4, 4, nameof(RopeStyle.Neox), 0.07 },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void MixedStepsMatchFloat64Attention(int heads, int kvHeads, string rope, double? smScale)
    {
        using var generator = new torch.Generator((ulong)(heads * 10 + kvHeads));
        var config = new AttentionBackendConfig(numLayers: 2, numHeads: heads, kvHeads: kvHeads, headDim: 64)
        {
            BlockSize = 8, RopeStyle = Enum.Parse<RopeStyle>(rope), RopeTheta = 1e4, MaxPositions = 128, SmScale = smScale,
        };
        using var backend = new SdpaAttentionBackend(config);
        using var scenario = new EngineScenario(backend, maxNumBlocks: 16, torch.CPU, generator);

        // Prefills; then a chunked prefill after 9 cached tokens, a decode, a fresh prompt and a one-token prompt;
        // then decodes only. Block size 8: every request crosses block boundaries.
        (int, int)[][] steps =
        [
            [(1, 9), (2, 20)],
            [(1, 7), (2, 1), (3, 5), (4, 1)],
            [(2, 1), (1, 1), (4, 1), (3, 1)],
        ];
        foreach (var step in steps)
        {
            var (qkv, output, requests) = scenario.Step(step);
            for (int layer = 0; layer < config.NumLayers; layer++)
            {
                using var reference = scenario.Reference(requests, layer);
                Assert.Equal(new long[] { qkv[layer].shape[0], heads * 64 }, output[layer].shape);
                Assert.Equal(config.DType, output[layer].dtype);
                var (relL1, cosine, _) = TorchReference.Compare(output[layer], reference);
                // fp16 inputs, keys rounded to fp16 after RoPE in the cache, output rounded to fp16: ~1e-3.
                Assert.True(relL1 < 3e-3, $"step [{string.Join(", ", step)}] layer {layer}: relL1 {relL1:E2}");
                Assert.True(cosine > 0.99999, $"step [{string.Join(", ", step)}] layer {layer}: cosine {cosine:F6}");
            }

            foreach (var t in qkv.Concat(output)) t.Dispose();
        }
    }
}
