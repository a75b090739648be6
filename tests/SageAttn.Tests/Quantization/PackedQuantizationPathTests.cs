using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Quantization;

/// <summary>
/// Packed (varlen) batches quantized by the fused path (<c>KvStatsKernel.RunPacked</c>, <c>QkvQuantizeKernel.RunPacked</c>)
/// and by the five separate packed kernels give the same attention output and LSE bit for bit on the CPU accelerator:
/// empty sequences, one-token ones, sequences starting off a 64-row (and off a 16-byte) boundary, more than one K/V strip
/// with a partial last chunk, bf16 with V smoothing, a padded head dim, both V formats. Outputs are poisoned before each run.
/// </summary>
public sealed class PackedQuantizationPathTests(CpuAcceleratorFixture fixture) : IClassFixture<CpuAcceleratorFixture>
{
    public sealed record Case(string Name, int[] LengthsQ, int[] LengthsK, int HeadsQ, int HeadsKv, int HeadDim, AttentionVariant Variant,
        TensorElementType Type = TensorElementType.Float16, bool SmoothV = false, int StripTiles = 0)
    {
        public override string ToString() => Name;
    }

    public static TheoryData<Case> Cases => new()
    {
        new Case("d64 gqa2 v2 empty and one-token sequences", [5, 0, 1, 70], [40, 0, 9, 100], 4, 2, 64, AttentionVariant.QkInt8PvFp8),
        new Case("d128 mha fp16 values, strips of 2 over 600 keys", [33, 200], [600, 333], 2, 2, 128, AttentionVariant.QkInt8PvFp16, StripTiles: 2),
        new Case("d80 gqa3 bf16 smoothV v2++ odd starts", [3, 77, 19], [131, 77, 270], 3, 1, 80, AttentionVariant.QkInt8PvFp8Fp16Accum,
            TensorElementType.BFloat16, SmoothV: true),
        new Case("d64 gqa2 wgmma fp8 queries with no keys", [7, 64], [0, 65], 2, 1, 64, AttentionVariant.HopperQkInt8PvFp8),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedPathEqualsSeparatePathExactly(Case c)
    {
        var separate = Run(c, QuantizationPath.Separate);
        var fused = Run(c, QuantizationPath.Fused);
        Assert.Equal(separate.Output.Length, fused.Output.Length);
        for (int i = 0; i < separate.Output.Length; i++)
            Assert.True(separate.Output[i] == fused.Output[i], $"{c.Name}: output element {i} 0x{fused.Output[i]:X4} vs 0x{separate.Output[i]:X4}");
        for (int i = 0; i < separate.Lse.Length; i++)
            Assert.True(separate.Lse[i].Equals(fused.Lse[i]), $"{c.Name}: lse {i} {fused.Lse[i]} vs {separate.Lse[i]}");
        // Not vacuous: real rows were written over the poison, with values that are not all zero.
        Assert.Contains(fused.Output, bits => bits != 0x7E00 && HalfBits.ToFloat(bits, c.Type) != 0f);
    }

    private (ushort[] Output, float[] Lse) Run(Case c, QuantizationPath path)
    {
        var runner = fixture.Require();
        var accelerator = fixture.Accelerator!;
        var random = new Random(c.Name.Length * 13 + c.HeadDim);
        int[] cuQ = TestData.Offsets(c.LengthsQ), cuK = TestData.Offsets(c.LengthsK);
        int tq = cuQ[^1], tk = cuK[^1], d = c.HeadDim;
        var q = TestData.Randn(random, 1, c.HeadsQ, tq, d, c.Type, nhd: true);
        var k = TestData.Randn(random, 1, c.HeadsKv, tk, d, c.Type, nhd: true, channelOffset: 3f);
        var v = TestData.Randn(random, 1, c.HeadsKv, tk, d, c.Type, nhd: true, channelOffset: 1f);
        var (qb, qv) = fixture.Upload(q);
        var (kb, kv) = fixture.Upload(k);
        var (vb, vv) = fixture.Upload(v);
        using var ob = accelerator.Allocate1D(TestData.Poisoned(tq * c.HeadsQ * d));
        using var lseBuffer = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, c.HeadsQ * tq).ToArray());
        using var cuQBuffer = accelerator.Allocate1D(cuQ);
        using var cuKBuffer = accelerator.Allocate1D(cuK);
        var output = new StridedTensor(ob.View, 1, c.HeadsQ, tq, d, 0, d, (long)c.HeadsQ * d);
        var options = new SageAttentionOptions { Variant = c.Variant, SmoothV = c.SmoothV };
        var (before, stripTiles) = (runner.QuantizationPath, runner.StripTiles);
        runner.QuantizationPath = path;
        runner.StripTiles = c.StripTiles > 0 ? c.StripTiles : null;
        try
        {
            using (qb) using (kb) using (vb)
            {
                runner.RunVarlen(qv, kv, vv, output, cuQBuffer.View, cuKBuffer.View, c.LengthsQ.Max(), c.LengthsK.Max(), c.Type,
                    1f / MathF.Sqrt(d), causal: true, lseBuffer.View, options);
            }
        }
        finally
        {
            runner.QuantizationPath = before;
            runner.StripTiles = stripTiles;
        }
        return (ob.GetAsArray1D(), lseBuffer.GetAsArray1D());
    }
}
