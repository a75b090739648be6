using SageAttn.Backend;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Quantization;

/// <summary>
/// The one-launch quantization (the driver path's default) on a GPU (quantization blocks wait for their head's statistics,
/// taken by other blocks): every buffer equal, byte for byte, to the two-launch fused path's, which the CPU tests pin to
/// the reference. Scratch is poisoned with 0xFF bytes before each call, and the one-launch call runs twice on the same
/// scratch (its counters must be zeroed again, or the second call's quantization would not wait for its statistics).
/// </summary>
[Trait("gpu", "true")]
public sealed class CudaQuantizationPathTests
{
    public static TheoryData<string, int, int, int, int, int, bool, int> Cases => new()
    {
        // name, B, Hq, Hkv, N, D, bf16, variant
        { "hd128 4K gqa2 fp8 V", 2, 8, 4, 4096, 128, false, (int)AttentionVariant.HopperQkInt8PvFp8 },
        { "hd128 1K B16 H32 fp8 V (the bench's shape)", 16, 32, 32, 1024, 128, false, (int)AttentionVariant.HopperQkInt8PvFp8 },
        { "hd64 1057 bf16 fp8 V", 3, 4, 4, 1057, 64, true, (int)AttentionVariant.HopperQkInt8PvFp8 },
        { "hd128 130 fp16 V", 1, 2, 1, 130, 128, false, (int)AttentionVariant.HopperQkInt8PvFp16 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void OneLaunchWritesWhatTheFusedPathWrites(string name, int batch, int hq, int hkv, int n, int d, bool bf16, int variant)
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
        var shape = new AttentionShape(batch, hq, hkv, n, n, d);
        Assert.True(FusedQuantizationPlan.TakesOneLaunch(shape), name);
        var dtype = bf16 ? ScalarType.BFloat16 : ScalarType.Float16;
        torch.manual_seed(n + d);
        using var q = torch.randn([batch, hq, n, d], dtype, torch.CUDA);
        // K with outlier channels (what smoothing removes), V with a channel offset (what V smoothing removes).
        using var k = (torch.randn([batch, hkv, n, d], ScalarType.Float32, torch.CUDA) + 8 * torch.randn([1, 1, 1, d], ScalarType.Float32, torch.CUDA)).to(dtype);
        using var v = (2 * torch.randn([batch, hkv, n, d], ScalarType.Float32, torch.CUDA) + 1).to(dtype);
        var options = new SageAttentionOptions { Variant = (AttentionVariant)variant, SmoothV = variant == (int)AttentionVariant.HopperQkInt8PvFp8 };
        var element = bf16 ? TensorElementType.BFloat16 : TensorElementType.Float16;

        var fused = Quantize(QuantizationPath.Fused, shape, options, q, k, v, element, calls: 1);
        var oneLaunch = Quantize(QuantizationPath.OneLaunch, shape, options, q, k, v, element, calls: 2);
        bool vStats = FusedQuantizationPlan.ReadsVStats(options, element);
        foreach (var (buffer, expected) in fused)
        {
            // K's statistics are computed when K is smoothed (the default), V's when V needs them.
            if (buffer == nameof(QuantizedScratch.Coordination) || (buffer == nameof(QuantizedScratch.VStats) && !vStats))
                continue;
            var actual = oneLaunch[buffer];
            Assert.True(expected.eq(actual).all().item<bool>(), $"{name}: {buffer} differs from the fused path's");
        }
        // Not vacuous: the outputs were written over the poison.
        Assert.True(fused[nameof(QuantizedScratch.K)].ne(255).any().item<bool>(), name);
        foreach (var t in fused.Values.Concat(oneLaunch.Values))
            t.Dispose();
    }

    /// <summary>
    /// Packed batches: the fused path's packed kernels write the quantized tensors, scales and means of the five-launch path
    /// byte for byte (statistics aside: the separate kernels also write zeros for chunks past a sequence's end, which the
    /// fused ones skip and nothing reads), and the attention outputs are equal. Sequences: empty, one token, unaligned starts.
    /// </summary>
    [Theory]
    [InlineData(false, (int)AttentionVariant.HopperQkInt8PvFp16)]
    [InlineData(true, (int)AttentionVariant.HopperQkInt8PvFp8)]
    public void PackedFusedPathWritesWhatTheSeparatePathWrites(bool bf16, int variant)
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
        int[] lengthsQ = [1000, 0, 1, 3000, 77], lengthsK = [1000, 0, 300, 3300, 2500];
        const int hq = 8, hkv = 2, d = 128;
        var dtype = bf16 ? ScalarType.BFloat16 : ScalarType.Float16;
        torch.manual_seed(variant + (bf16 ? 1 : 0));
        int tq = lengthsQ.Sum(), tk = lengthsK.Sum();
        using var q = torch.randn([tq, hq, d], dtype, torch.CUDA);
        using var k = (torch.randn([tk, hkv, d], ScalarType.Float32, torch.CUDA) + 8 * torch.randn([1, 1, d], ScalarType.Float32, torch.CUDA)).to(dtype);
        using var v = (2 * torch.randn([tk, hkv, d], ScalarType.Float32, torch.CUDA) + 1).to(dtype);
        using var cuQ = torch.tensor(TestData.Offsets(lengthsQ), ScalarType.Int32, torch.CUDA);
        using var cuK = torch.tensor(TestData.Offsets(lengthsK), ScalarType.Int32, torch.CUDA);
        var shape = new VarlenShape(lengthsQ.Length, hq, hkv, tq, tk, lengthsQ.Max(), lengthsK.Max(), d);
        var options = new SageAttentionOptions { Variant = (AttentionVariant)variant, SmoothV = variant == (int)AttentionVariant.HopperQkInt8PvFp8 };
        var element = bf16 ? TensorElementType.BFloat16 : TensorElementType.Float16;

        var (separate, separateOut) = QuantizePacked(QuantizationPath.Separate, shape, options, q, k, v, cuQ, cuK, element);
        var (fused, fusedOut) = QuantizePacked(QuantizationPath.OneLaunch, shape, options, q, k, v, cuQ, cuK, element);
        using (separateOut)
        using (fusedOut)
        {
            foreach (var (buffer, expected) in separate)
            {
                if (buffer is nameof(QuantizedScratch.Coordination) or nameof(QuantizedScratch.KStats) or nameof(QuantizedScratch.VStats))
                    continue;
                Assert.True(expected.eq(fused[buffer]).all().item<bool>(), $"{buffer} differs from the separate path's");
            }
            Assert.True(separateOut.eq(fusedOut).all().item<bool>(), "the attention outputs differ");
            // Not vacuous: the outputs were written over the poison.
            Assert.True(fused[nameof(QuantizedScratch.K)].ne(255).any().item<bool>());
        }
        foreach (var t in separate.Values.Concat(fused.Values))
            t.Dispose();
    }

    private static (Dictionary<string, Tensor> Buffers, Tensor Output) QuantizePacked(QuantizationPath path, VarlenShape shape,
        SageAttentionOptions options, Tensor q, Tensor k, Tensor v, Tensor cuQ, Tensor cuK, TensorElementType element)
    {
        var pipeline = new CudaSageAttention { QuantizationPath = path };
        var buffers = new Dictionary<string, Tensor>();
        IntPtr Allocate(string name, long bytes)
        {
            var t = torch.full([bytes], 255, ScalarType.Byte, torch.CUDA);
            buffers[name] = t;
            return TorchInterop.DataPointer(t);
        }
        var scratch = QuantizedScratch.Allocate(shape.Layout(options), Allocate);
        var output = torch.full(q.shape, float.NaN, q.dtype, torch.CUDA);
        pipeline.EnqueueVarlen(0, TorchInterop.CurrentCudaStream(0), Packed(q), Packed(k), Packed(v), Packed(output),
            new DeviceView(TorchInterop.DataPointer(cuQ), cuQ.numel()), new DeviceView(TorchInterop.DataPointer(cuK), cuK.numel()),
            shape.MaxQ, shape.MaxK, element, 1f / MathF.Sqrt(shape.HeadDim), causal: true, options, scratch, default, default);
        torch.cuda.synchronize();
        pipeline.Dispose();
        return (buffers, output);
    }

    /// <summary>A packed [T, H, D] tensor as the launcher's [1, H, T, D] view.</summary>
    private static DeviceTensor Packed(Tensor t) =>
        new(TorchInterop.DataPointer(t), t.numel(), 1, (int)t.shape[1], (int)t.shape[0], (int)t.shape[2], 0, t.shape[2], t.shape[1] * t.shape[2]);

    private static Dictionary<string, Tensor> Quantize(QuantizationPath path, AttentionShape shape, SageAttentionOptions options,
        Tensor q, Tensor k, Tensor v, TensorElementType element, int calls)
    {
        var pipeline = new CudaSageAttention { QuantizationPath = path };
        var layout = QuantizedLayout.For(shape, options);
        var buffers = new Dictionary<string, Tensor>();
        IntPtr Allocate(string name, long bytes)
        {
            var t = torch.full([bytes], 255, ScalarType.Byte, torch.CUDA);
            buffers[name] = t;
            return TorchInterop.DataPointer(t);
        }
        var scratch = QuantizedScratch.Allocate(layout, Allocate);
        using var output = torch.empty(q.shape, q.dtype, torch.CUDA);
        for (int call = 0; call < calls; call++)
        {
            foreach (var (name, t) in buffers)
            {
                if (name != nameof(QuantizedScratch.Coordination))
                    t.fill_(255);
            }
            pipeline.Enqueue(0, TorchInterop.CurrentCudaStream(0), Describe(q), Describe(k), Describe(v), Describe(output), element,
                1f / MathF.Sqrt(shape.HeadDim), false, 0, options, scratch, default, default, PipelineStages.Quantize);
            torch.cuda.synchronize();
        }
        pipeline.Dispose();
        return buffers;
    }

    private static DeviceTensor Describe(Tensor t) =>
        new(TorchInterop.DataPointer(t), t.numel(), (int)t.shape[0], (int)t.shape[1], (int)t.shape[2], (int)t.shape[3],
            t.shape[1] * t.shape[2] * t.shape[3], t.shape[2] * t.shape[3], t.shape[3]);
}
