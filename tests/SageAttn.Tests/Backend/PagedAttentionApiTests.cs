using SageAttn.Backend;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>
/// <see cref="PagedAttention.decode"/> on TorchSharp tensors against float64 attention over keys gathered through shuffled
/// block tables. One subclass per device.
/// </summary>
public abstract class PagedAttentionApiTests(ITestOutputHelper log)
{
    protected abstract Device Device { get; }

    protected virtual void Require()
    {
    }

    /// <summary>The problem's tensors on <see cref="Device"/> (values exact in fp16/bf16, so the float route is lossless).</summary>
    protected (Tensor Q, Tensor K, Tensor V, Tensor Tables, Tensor Lens) Tensors(PagedDecodeProblem p)
    {
        var dtype = p.Type == TensorElementType.Float16 ? ScalarType.Float16 : ScalarType.BFloat16;
        Tensor Half(ushort[] bits, long[] shape)
        {
            using var floats = torch.tensor(bits.Select(x => HalfBits.ToFloat(x, p.Type)).ToArray(), ScalarType.Float32).reshape(shape);
            return floats.to(dtype).to(Device);
        }
        var q = Half(p.Q, [p.Batch, p.HeadsQ, p.HeadDim]);
        var k = Half(p.KCache, [p.NumBlocks, p.HeadsKv, p.BlockSize, p.HeadDim]);
        var v = Half(p.VCache, [p.NumBlocks, p.HeadsKv, p.BlockSize, p.HeadDim]);
        var tables = torch.tensor(p.BlockTables, ScalarType.Int32).reshape(p.Batch, p.MaxBlocksPerSeq).to(Device);
        var lens = torch.tensor(p.SeqLens, ScalarType.Int32).to(Device);
        return (q, k, v, tables, lens);
    }

    /// <summary>Decoding into rows of a wider buffer (an engine's [tokens, H·D] output) writes exactly those elements.</summary>
    protected void CheckWritesIntoStridedOutput()
    {
        Require();
        var problem = PagedDecodeProblem.Create(new Random(19), [40, 130], 4, 2, 64, 16, TensorElementType.Float16);
        var (q, k, v, tables, lens) = Tensors(problem);
        using var _q = q; using var _k = k; using var _v = v; using var _t = tables; using var _l = lens;
        using var buffer = torch.full([2, 3 * 4 * 64], 7f, ScalarType.Float16, Device);
        using var rows = buffer.narrow(1, 64, 4 * 64).view(2, 4, 64);
        var returned = PagedAttention.decode(q, k, v, tables, lens, problem.MaxSeqLen, num_splits: 2, output: rows);
        Assert.Same(rows, returned);
        using var plain = PagedAttention.decode(q, k, v, tables, lens, problem.MaxSeqLen, num_splits: 2);
        Assert.True(rows.allclose(plain, rtol: 0, atol: 0));
        using var before = buffer.narrow(1, 0, 64);
        using var after = buffer.narrow(1, 5 * 64, 3 * 4 * 64 - 5 * 64);
        Assert.True(before.eq(7f).all().item<bool>() && after.eq(7f).all().item<bool>(), "elements outside the rows were written");
    }

    protected void Check(int[] seqLens, int headsQ, int headsKv, int headDim, int blockSize, TensorElementType type, int? splits, int seed)
    {
        Require();
        var problem = PagedDecodeProblem.Create(new Random(seed), seqLens, headsQ, headsKv, headDim, blockSize, type);
        var (q, k, v, tables, lens) = Tensors(problem);
        using var _q = q; using var _k = k; using var _v = v; using var _t = tables; using var _l = lens;
        var (output, lse) = PagedAttention.decode_with_lse(q, k, v, tables, lens, problem.MaxSeqLen, num_splits: splits);
        using var _o = output; using var _lse = lse;

        Assert.Equal(Device.type, output.device_type);
        Assert.Equal(q.dtype, output.dtype);
        Assert.Equal([problem.Batch, headsQ, headDim], output.shape);
        var (expected, expectedLse) = problem.Reference(1.0 / Math.Sqrt(headDim));
        using var actual = output.to(DeviceType.CPU).to(ScalarType.Float64).contiguous();
        var e = TestData.Compare(actual.data<double>().ToArray(), expected);
        log.WriteLine($"{seqLens.Length} requests, max {problem.MaxSeqLen} keys, gqa {headsQ / headsKv}, {type}: relL1 {e.RelL1:E2} cos {e.Cosine:F6}");
        double bar = type == TensorElementType.Float16 ? 1e-3 : 6e-3;
        Assert.True(e.RelL1 <= bar, $"relL1 {e.RelL1:E3} > {bar}");
        using var lseCpu = lse.to(DeviceType.CPU).contiguous();
        var lseValues = lseCpu.data<float>().ToArray();
        for (int i = 0; i < lseValues.Length; i++)
            Assert.True(lseValues[i] == expectedLse[i] /* both −∞ for an empty request */ || Math.Abs(lseValues[i] - expectedLse[i]) <= 2e-3 * Math.Max(1, Math.Abs(expectedLse[i])), $"lse[{i}] {lseValues[i]} vs {expectedLse[i]}");
    }
}

/// <summary>The API on CPU tensors (ILGPU's CPU accelerator).</summary>
public sealed class PagedAttentionApiCpuTests(ITestOutputHelper log) : PagedAttentionApiTests(log)
{
    protected override Device Device => torch.CPU;

    [Fact]
    public void DecodeMatchesFloat64Gqa7Bf16Split() => Check([70, 1, 129], 7, 1, 64, 16, TensorElementType.BFloat16, splits: 2, seed: 5);

    [Fact]
    public void DecodeMatchesFloat64Gqa2Fp16() => Check([64, 100], 4, 2, 128, 64, TensorElementType.Float16, splits: null, seed: 6);

    [Fact]
    public void DecodeWritesIntoStridedOutput() => CheckWritesIntoStridedOutput();

    [Fact]
    public void DecodeReadsStridedQueriesInPlace()
    {
        // q as a slice of a packed [B, (Hq + 2·Hkv)·D] projection, the backend's shape: head stride D, batch stride (Hq + 2·Hkv)·D.
        var problem = PagedDecodeProblem.Create(new Random(9), [40, 17], 2, 1, 64, 16, TensorElementType.Float16);
        var (q, k, v, tables, lens) = Tensors(problem);
        using var _q = q; using var _k = k; using var _v = v; using var _t = tables; using var _l = lens;
        using var packed = torch.cat([q.reshape(2, 128), torch.zeros(2, 128, ScalarType.Float16)], 1);
        using var strided = packed.narrow(1, 0, 128).reshape(2, 2, 64);
        Assert.False(strided.is_contiguous());
        using var fromStrided = PagedAttention.decode(strided, k, v, tables, lens, problem.MaxSeqLen);
        using var fromContiguous = PagedAttention.decode(q, k, v, tables, lens, problem.MaxSeqLen);
        Assert.True(fromStrided.allclose(fromContiguous, rtol: 0, atol: 0));
    }
}

/// <summary>The API on CUDA tensors through the driver path; skipped without CUDA libtorch and a GPU.</summary>
[Trait("gpu", "true")]
public sealed class PagedAttentionApiCudaTests(ITestOutputHelper log) : PagedAttentionApiTests(log)
{
    protected override Device Device => torch.CUDA;

    protected override void Require()
    {
        if (!torch.cuda.is_available())
            Assert.Skip("no CUDA libtorch/device here (set SAGEATTN_LIBTORCH_DIR to a CUDA torch/lib on the GPU machine)");
    }

    [Fact]
    public void DecodeMatchesFloat64SmallForcedSplit() => Check([70, 1, 0, 129], 7, 1, 64, 16, TensorElementType.BFloat16, splits: 3, seed: 5);

    [Fact]
    public void LongContext32KB4Hd128Gqa8MatchesFloat64() =>
        Check([32768, 32000, 12345, 32768], 32, 4, 128, 64, TensorElementType.Float16, splits: null, seed: 32);

    [Fact]
    public void LongContext32KBf16Gqa8NoSplitMatchesFloat64() =>
        Check([32768, 100], 16, 2, 128, 64, TensorElementType.BFloat16, splits: 1, seed: 33);

    [Fact]
    public void DecodeWritesIntoStridedOutput() => CheckWritesIntoStridedOutput();

    [Fact]
    public void OutputIsReadByTorchWithoutSynchronize()
    {
        Require();
        var problem = PagedDecodeProblem.Create(new Random(3), [300, 64], 8, 1, 128, 64, TensorElementType.Float16);
        var (q, k, v, tables, lens) = Tensors(problem);
        using var _q = q; using var _k = k; using var _v = v; using var _t = tables; using var _l = lens;
        using var output = PagedAttention.decode(q, k, v, tables, lens, problem.MaxSeqLen, num_splits: 2);
        // A torch op on the same stream right away: it is ordered after our kernels.
        using var doubled = output * 2;
        var (expected, _) = problem.Reference(1.0 / Math.Sqrt(128));
        using var actual = doubled.to(DeviceType.CPU).to(ScalarType.Float64).contiguous();
        var e = TestData.Compare(actual.data<double>().ToArray(), expected.Select(x => 2 * x).ToArray());
        Assert.True(e.RelL1 <= 1e-3, $"relL1 {e.RelL1:E3}");
    }
}
