using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>
/// ForwardMixed leaves exactly one tensor behind in the caller's dispose scope, its output: every intermediate
/// (rotated q/k, gathered keys, per-request pieces, routing) is released inside, so a long engine loop cannot leak.
/// </summary>
public sealed class AttentionBackendDisposalTests
{
    [Theory]
    [InlineData(SdpaAttentionBackend.BackendName)]
    [InlineData(SageAttentionBackend.BackendName)]
    public void ForwardMixedLeavesOnlyItsOutput(string name)
    {
        using var generator = new torch.Generator(21);
        var config = new AttentionBackendConfig(numLayers: 1, numHeads: 2, kvHeads: 1, headDim: 64) { BlockSize = 16, MaxPositions = 32 };
        using var backend = AttentionBackendRegistry.Create(name, config);
        using var cache = new PagedKvCache(backend, 4, torch.CPU);
        using var rope = RotaryTable.For(config);

        // A prefill, then a mixed step (decode + prefill) so the SAGE routing path runs too.
        foreach (var step in new RequestSlot[][] { [new(1, 0, 3)], [new(1, 3, 1), new(2, 0, 2)] })
        {
            using var meta = ForwardMeta.Create(step, cache, rope);
            backend.InitAttentionMetadata(meta);
            using var qkv = EngineScenario.RandomQkv(generator, config, meta.TotalTokens, torch.CPU);
            using var scope = torch.NewDisposeScope();
            int before = scope.DisposablesCount;
            var output = backend.ForwardMixed(qkv, 0, meta);
            Assert.Equal(before + 1, scope.DisposablesCount);
            Assert.Contains(output, scope.DisposablesView);
        }
    }
}
