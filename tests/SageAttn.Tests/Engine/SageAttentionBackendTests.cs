using SageAttn.Backend.Engine;
using SageAttn.Kernels.Runtime;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>
/// The SAGE backend against the SDPA backend on the same steps (same qkv, each with its own cache): prefills, then a
/// mixed step (chunked prefill after a prefix, decodes, a fresh prompt), then decode steps. One subclass per device.
/// Bars: cosine ≥ 0.999 and relative L1 ≤ 0.05 per step and layer (INT8 Q·Kᵀ with FP8 P·V, as the kernel tests).
/// </summary>
public abstract class SageAttentionBackendTests
{
    protected abstract Device Device { get; }

    /// <summary>Skips when this machine lacks the device.</summary>
    protected virtual void RequireDevice()
    {
    }

    /// <summary>Runs <paramref name="steps"/> through both backends and compares every step's every layer.</summary>
    protected void AssertSageMatchesSdpa(torch.Generator random, AttentionBackendConfig config, int maxNumBlocks, (int Id, int NewTokens)[][] steps)
    {
        using var sdpa = new SdpaAttentionBackend(config);
        using var sage = new SageAttentionBackend(config);
        using var sdpaRun = new EngineScenario(sdpa, maxNumBlocks, Device, random);
        using var sageRun = new EngineScenario(sage, maxNumBlocks, Device, random);
        foreach (var step in steps)
        {
            var (qkv, expected, _) = sdpaRun.Step(step);
            var (_, actual, _) = sageRun.StepWith(qkv, step);
            for (int layer = 0; layer < config.NumLayers; layer++)
            {
                Assert.Equal(expected[layer].shape, actual[layer].shape);
                Assert.Equal(config.DType, actual[layer].dtype);
                Assert.Equal(Device.type, actual[layer].device_type);
                var (relL1, cosine, _) = TorchReference.Compare(actual[layer], expected[layer]);
                TestContext.Current.TestOutputHelper?.WriteLine($"step [{string.Join(", ", step)}] layer {layer}: relL1 {relL1:F4} cosine {cosine:F6}");
                Assert.True(cosine >= 0.999, $"step [{string.Join(", ", step)}] layer {layer}: cosine {cosine:F6}");
                Assert.True(relL1 <= 0.05, $"step [{string.Join(", ", step)}] layer {layer}: relL1 {relL1:F4}");
            }

            foreach (var t in qkv.Concat(expected).Concat(actual)) t.Dispose();
        }
    }
}

/// <summary>CPU tensors (the Sage kernels on ILGPU's CPU accelerator): tiny requests, runs in CI.</summary>
public sealed class SageAttentionBackendCpuTests : SageAttentionBackendTests
{
    protected override Device Device => torch.CPU;

    /// <remarks>head_dim 64 decodes through the paged decode kernel; 32 through the dense per-request fallback (head dims
    /// the decode kernel does not cover), which no model preset takes.</remarks>
    [Theory]
    [InlineData(4, 2, nameof(RopeStyle.Neox), "f16", 64)]
    [InlineData(7, 1, nameof(RopeStyle.Interleaved), "bf16", 64)]
    [InlineData(4, 2, nameof(RopeStyle.Neox), "f16", 32)]
    public void MixedStepsMatchSdpaBackend(int heads, int kvHeads, string rope, string dtype, int headDim)
    {
        using var generator = new torch.Generator((ulong)(100 + heads + headDim));
        // One layer: each Sage call costs seconds on the CPU accelerator; the SDPA tests check that layers keep apart.
        var config = new AttentionBackendConfig(numLayers: 1, numHeads: heads, kvHeads: kvHeads, headDim: headDim)
        {
            BlockSize = 16, RopeStyle = Enum.Parse<RopeStyle>(rope), RopeTheta = 1e6, MaxPositions = 64,
            DType = dtype == "f16" ? ScalarType.Float16 : ScalarType.BFloat16,
        };
        AssertSageMatchesSdpa(generator, config, maxNumBlocks: 12,
        [
            [(1, 23), (2, 9)],
            [(2, 1), (1, 17), (3, 30)],
            [(3, 1), (1, 1), (2, 1)],
        ]);
    }
}

/// <summary>CUDA tensors (the driver path on libtorch's stream): a larger batch on real shapes; the GPU machine only.</summary>
[Trait("gpu", "true")]
[Collection(DeviceMemoryCollection.Name)]
public sealed class SageAttentionBackendCudaTests : SageAttentionBackendTests
{
    protected override Device Device => torch.CUDA;

    protected override void RequireDevice()
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
    }

    [Theory]
    [InlineData(32, 8, 128, nameof(RopeStyle.Neox), "f16")]
    [InlineData(16, 2, 128, nameof(RopeStyle.Interleaved), "bf16")]
    [InlineData(14, 2, 64, nameof(RopeStyle.Neox), "bf16")]
    public void LargeMixedBatchMatchesSdpaBackend(int heads, int kvHeads, int headDim, string rope, string dtype)
    {
        RequireDevice();
        using var generator = new torch.Generator((ulong)(200 + heads));
        var config = new AttentionBackendConfig(numLayers: 2, numHeads: heads, kvHeads: kvHeads, headDim: headDim)
        {
            BlockSize = 64, RopeStyle = Enum.Parse<RopeStyle>(rope), RopeTheta = 1e6, MaxPositions = 4096,
            DType = dtype == "f16" ? ScalarType.Float16 : ScalarType.BFloat16,
        };
        AssertSageMatchesSdpa(generator, config, maxNumBlocks: 256,
        [
            [(1, 700), (2, 129), (3, 1000), (4, 64), (5, 333)],
            [(1, 1), (2, 500), (3, 1), (4, 1), (6, 1200), (5, 1)],
            [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)],
            [(6, 1), (5, 1), (4, 1), (3, 1), (2, 1), (1, 1)],
        ]);
    }

    /// <summary>
    /// 300 engine steps (metadata, 2 layers, dispose) with no dispose scope of the caller's: every intermediate tensor
    /// must be released by the backend itself, so the driver's free memory stays put.
    /// </summary>
    [Theory]
    [InlineData(SageAttentionBackend.BackendName)]
    [InlineData(SdpaAttentionBackend.BackendName)]
    public void DecodeLoopKeepsMemoryStable(string name)
    {
        RequireDevice();
        using var generator = new torch.Generator(3);
        var config = new AttentionBackendConfig(numLayers: 2, numHeads: 16, kvHeads: 4, headDim: 128) { MaxPositions = 2048 };
        using var backend = AttentionBackendRegistry.Create(name, config);
        using var cache = new PagedKvCache(backend, maxNumBlocks: 64, Device);
        using var rope = RotaryTable.For(config, Device);
        using var prompt = EngineScenario.RandomQkv(generator, config, 4 * 256, Device);
        using var token = EngineScenario.RandomQkv(generator, config, 4, Device);

        void Step(RequestSlot[] requests, Tensor qkv)
        {
            using var meta = ForwardMeta.Create(requests, cache, rope);
            backend.InitAttentionMetadata(meta);
            for (int layer = 0; layer < config.NumLayers; layer++)
                backend.ForwardMixed(qkv, layer, meta).Dispose();
        }

        Step([.. Enumerable.Range(0, 4).Select(r => new RequestSlot(r, 0, 256))], prompt);
        for (int i = 0; i < 20; i++)
            Step([.. Enumerable.Range(0, 4).Select(r => new RequestSlot(r, 256 + i, 1))], token);
        torch.cuda.synchronize();
        long before = CudaDriver.MemoryInfo().Free;
        for (int i = 20; i < 320; i++)
            Step([.. Enumerable.Range(0, 4).Select(r => new RequestSlot(r, 256 + i, 1))], token);
        torch.cuda.synchronize();
        long after = CudaDriver.MemoryInfo().Free;
        // A leaked [4, 16·128] fp16 output alone is 16 KB a layer; gathered keys are ~1 MB a layer: 300 steps of either would show.
        Assert.True(before - after < 32L << 20, $"free memory dropped by {(before - after) >> 20} MB over 300 steps");
    }
}
