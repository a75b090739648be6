using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Reference;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Quantization.Reference;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Attention;

/// <summary>
/// The attention kernel against float64 attention (the accuracy bar) and against the scalar model of the
/// same quantized algorithm (tight: catches fragment-layout bugs). One subclass per accelerator.
/// </summary>
public abstract class AttentionKernelTests(AcceleratorFixture fixture, ITestOutputHelper log)
{
    /// <summary>Relative L1 against the quantized model: rounding-order differences only.</summary>
    protected const double ModelTolerance = 1e-4;

    /// <summary>
    /// v2++ on real tensor cores: the FP16 accumulator's internal rounding order is not specified, so one
    /// block's FP16 partial may differ from the model by an FP16 ulp (2^-11 ≈ 4.9e-4 relative). Measured
    /// on the H100: 1.9e-4 and 2.2e-4 where every other variant stays below 1e-6.
    /// </summary>
    protected const double Fp16AccumModelTolerance = 5e-4;

    public sealed record Case(string Name, int Batch, int HeadsQ, int HeadsKv, int Nq, int Nk, int HeadDim,
        AttentionVariant Variant, bool Causal = false, bool Nhd = false, TensorElementType Type = TensorElementType.Float16,
        bool Lse = false, float KOffset = 0f, bool SmoothV = false, QuantGranularity Granularity = QuantGranularity.PerThread,
        int HopperWarpGroups = 0, int OutputRowPad = 0, bool WarpSpecialized = false)
    {
        public override string ToString() => Name;
    }

    /// <summary>Runs one case and returns (relL1, cosine) against float64, after asserting the model agreement.</summary>
    protected (double RelL1, double Cosine) RunCase(Case c, int seed, bool checkModel = true)
    {
        var runner = fixture.Require();
        var random = new Random(seed);
        var q = TestData.Randn(random, c.Batch, c.HeadsQ, c.Nq, c.HeadDim, c.Type, c.Nhd);
        var k = TestData.Randn(random, c.Batch, c.HeadsKv, c.Nk, c.HeadDim, c.Type, c.Nhd, channelOffset: c.KOffset);
        var v = TestData.Randn(random, c.Batch, c.HeadsKv, c.Nk, c.HeadDim, c.Type, c.Nhd);
        float smScale = 1f / MathF.Sqrt(c.HeadDim);
        int causalOffset = c.Causal ? Math.Max(0, c.Nk - c.Nq) : 0;
        var options = new SageAttentionOptions { Variant = c.Variant, Granularity = c.Granularity, SmoothV = c.SmoothV, HopperWarpGroups = c.HopperWarpGroups,
            HopperWarpSpecialized = c.WarpSpecialized };
        var accelerator = fixture.Accelerator!;

        // O's rows may be padded (OutputRowPad elements after each row): an odd pad makes rows start mid-word, so the
        // epilogue must store element by element; the pad elements must keep their poison.
        int rowStride = c.HeadDim + c.OutputRowPad;
        int outLength = c.Batch * c.HeadsQ * c.Nq * rowStride;
        var (qb, qv) = fixture.Upload(q);
        var (kb, kv) = fixture.Upload(k);
        var (vb, vv) = fixture.Upload(v);
        using var ob = accelerator.Allocate1D(TestData.Poisoned(outLength));
        using var lseBuffer = accelerator.Allocate1D<float>(c.Lse ? c.Batch * c.HeadsQ * c.Nq : 1);
        var output = new StridedTensor(ob.View, c.Batch, c.HeadsQ, c.Nq, c.HeadDim,
            (long)c.HeadsQ * c.Nq * rowStride, (long)c.Nq * rowStride, rowStride);
        QuantizedHostInputs hostInputs;
        using (qb) using (kb) using (vb)
        using (var quantized = runner.Quantize(qv, kv, vv, c.Type, smScale, options))
        {
            runner.Attend(quantized, qv, output, c.Type, smScale, c.Causal, causalOffset,
                c.Lse ? lseBuffer.View : default);
            accelerator.Synchronize();
            hostInputs = new QuantizedHostInputs(quantized.Q.GetAsArray1D(), quantized.QScale.GetAsArray1D(),
                quantized.K.GetAsArray1D(), quantized.KScale.GetAsArray1D(), quantized.V.GetAsArray1D(),
                quantized.VScale.GetAsArray1D(), quantized.VMean.GetAsArray1D(), c.Lse ? LseCorrection(q, k, smScale) : null);
        }
        var written = ob.GetAsArray1D();
        var poison = TestData.Poisoned(1)[0];
        for (int row = 0; row < written.Length / rowStride; row++)
            for (int pad = c.HeadDim; pad < rowStride; pad++)
                Assert.True(written[row * rowStride + pad] == poison, $"{c.Name}: row {row} padding element {pad - c.HeadDim} was written");
        var actual = Enumerable.Range(0, written.Length).Where(i => i % rowStride < c.HeadDim)
            .Select(i => (double)HalfBits.ToFloat(written[i], c.Type)).ToArray();

        float[] model = [], modelLse = [];
        var vsModel = (RelL1: 0.0, Cosine: 1.0, Rmse: 0.0);
        if (checkModel)
        {
            (model, modelLse) = QuantizedAttentionModel.Compute(hostInputs, c.Batch, c.HeadsQ, c.HeadsKv, c.Nq, c.Nk, c.HeadDim,
                c.Variant, c.Causal, causalOffset, c.SmoothV, c.Type);
            vsModel = TestData.Compare(actual, model.Select(x => (double)x).ToArray());
        }

        var (exact, exactLse) = ExactAttention.Compute(q, k, v, smScale, c.Causal, causalOffset);
        var vsExact = TestData.Compare(actual, exact);
        log.WriteLine($"{c.Name}: vs float64 relL1 {vsExact.RelL1:F5} cos {vsExact.Cosine:F6} rmse {vsExact.Rmse:E2}; vs model relL1 {(checkModel ? vsModel.RelL1.ToString("E2") : "not checked")}");
        double tolerance = c.Variant == AttentionVariant.QkInt8PvFp8Fp16Accum ? Fp16AccumModelTolerance : ModelTolerance;
        Assert.True(vsModel.RelL1 <= tolerance, $"{c.Name}: kernel differs from the quantized model by relL1 {vsModel.RelL1:E3}");

        if (c.Lse)
        {
            var lse = lseBuffer.GetAsArray1D();
            for (int i = 0; i < exactLse.Length; i++)
            {
                if (checkModel)
                    Assert.True(Math.Abs(lse[i] - modelLse[i]) <= 1e-3 * Math.Max(1, Math.Abs(modelLse[i])), $"lse[{i}] {lse[i]} vs model {modelLse[i]}");
                Assert.True(Math.Abs(lse[i] - exactLse[i]) <= 0.02 * Math.Max(1, Math.Abs(exactLse[i])), $"lse[{i}] {lse[i]} vs exact {exactLse[i]}");
            }
        }
        return (vsExact.RelL1, vsExact.Cosine);
    }

    /// <summary>The accuracy bar of the core issue: FP8 P·V cosine ≥ 0.998 and relL1 ≤ 0.06; FP16 P·V relL1 ≤ 0.02.</summary>
    protected static void AssertAccuracy(Case c, (double RelL1, double Cosine) e)
    {
        if (c.Variant.HasFp16Values())
            Assert.True(e.RelL1 <= 0.02, $"{c.Name}: relL1 {e.RelL1:F4} > 0.02");
        else
        {
            Assert.True(e.Cosine >= 0.998, $"{c.Name}: cosine {e.Cosine:F5} < 0.998");
            Assert.True(e.RelL1 <= 0.06, $"{c.Name}: relL1 {e.RelL1:F4} > 0.06");
        }
    }

    /// <summary>q·mean(K)·sm_scale from the host inputs, as the LSE correction kernel computes it.</summary>
    private static float[] LseCorrection(HostTensor q, HostTensor k, float smScale)
    {
        int dp = SageConstants.PaddedHeadDim(q.HeadDim);
        var means = QuantizationReference.ChannelMeans(k, QuantizationReference.ChannelStats(k, dp), dp);
        var result = new float[q.Batch * q.Heads * q.Tokens];
        int group = q.Heads / k.Heads;
        for (int b = 0; b < q.Batch; b++)
        for (int h = 0; h < q.Heads; h++)
        for (int n = 0; n < q.Tokens; n++)
        {
            float dot = 0;
            for (int c = 0; c < q.HeadDim; c++) dot += q[b, h, n, c] * means[(b * k.Heads + h / group) * dp + c];
            result[(b * q.Heads + h) * q.Tokens + n] = dot * smScale;
        }
        return result;
    }

    /// <summary>Small cases that cover the acceptance matrix and run on the CPU accelerator in CI.</summary>
    public static TheoryData<Case> SmallCases => new()
    {
        new Case("d64 n1 v2", 1, 2, 1, 1, 1, 64, AttentionVariant.QkInt8PvFp8),
        new Case("d128 n130 v2 lse", 1, 2, 1, 130, 130, 128, AttentionVariant.QkInt8PvFp8, Lse: true, KOffset: 8f),
        new Case("d64 n200 v2++ causal", 1, 2, 2, 200, 200, 64, AttentionVariant.QkInt8PvFp8Fp16Accum, Causal: true),
        new Case("d128 n200 fp16pv gqa2 nhd", 1, 4, 2, 200, 200, 128, AttentionVariant.QkInt8PvFp16, Nhd: true),
        new Case("d64 gqa7 v2 bf16 smoothV perwarp", 1, 7, 1, 96, 150, 64, AttentionVariant.QkInt8PvFp8, Type: TensorElementType.BFloat16, SmoothV: true, Granularity: QuantGranularity.PerWarp),
        new Case("d128 causal bottom-right q<k v2 lse", 2, 2, 1, 70, 200, 128, AttentionVariant.QkInt8PvFp8, Causal: true, Lse: true),
        new Case("d80 padded v2++ perblock", 1, 1, 1, 100, 64, 80, AttentionVariant.QkInt8PvFp8Fp16Accum, Granularity: QuantGranularity.PerBlock),
        new Case("d64 causal top-left fp16pv", 1, 2, 1, 130, 130, 64, AttentionVariant.QkInt8PvFp16, Causal: true, KOffset: 8f),
        new Case("d128 odd row stride bf16 v2 smoothV", 1, 2, 1, 40, 70, 128, AttentionVariant.QkInt8PvFp8, Type: TensorElementType.BFloat16,
            SmoothV: true, OutputRowPad: 1),
    };
}

/// <summary>The kernels on ILGPU's CPU accelerator with exact tensor-core emulation (CI).</summary>
public sealed class CpuAttentionKernelTests(CpuAcceleratorFixture fixture, ITestOutputHelper log)
    : AttentionKernelTests(fixture, log), IClassFixture<CpuAcceleratorFixture>
{
    [Theory]
    [MemberData(nameof(SmallCases))]
    public void MatchesModelAndReference(Case c) => AssertAccuracy(c, RunCase(c, seed: c.Name.Length * 97 + c.Nq));
}

/// <summary>
/// The same kernels through ILGPU's CUDA accelerator (PTX with mma.sync); skipped where no GPU exists.
/// Adds the large-shape accuracy bar of SageAttention2's Hopper kernel (shared/notes/anchors.md).
/// </summary>
[Trait("gpu", "true")]
[Collection(IlgpuCudaCollection.Name)]
public sealed class CudaAttentionKernelTests(CudaAcceleratorFixture fixture, ITestOutputHelper log)
    : AttentionKernelTests(fixture, log), IClassFixture<CudaAcceleratorFixture>
{
    [Theory]
    [MemberData(nameof(SmallCases))]
    public void MatchesModelAndReference(Case c) => AssertAccuracy(c, RunCase(c, seed: c.Name.Length * 89 + c.Nq));

    public static TheoryData<Case> LargeCases => new()
    {
        new Case("4K v2", 1, 8, 8, 4096, 4096, 128, AttentionVariant.QkInt8PvFp8),
        new Case("4K v2 K-bias", 1, 8, 8, 4096, 4096, 128, AttentionVariant.QkInt8PvFp8, KOffset: 8f),
        new Case("4K v2 causal", 1, 8, 8, 4096, 4096, 128, AttentionVariant.QkInt8PvFp8, Causal: true),
        new Case("4K v2++", 1, 8, 8, 4096, 4096, 128, AttentionVariant.QkInt8PvFp8Fp16Accum),
        new Case("4K v2++ K-bias", 1, 8, 8, 4096, 4096, 128, AttentionVariant.QkInt8PvFp8Fp16Accum, KOffset: 8f),
        new Case("4K fp16pv", 1, 8, 8, 4096, 4096, 128, AttentionVariant.QkInt8PvFp16),
        new Case("4K fp16pv K-bias", 1, 8, 8, 4096, 4096, 128, AttentionVariant.QkInt8PvFp16, KOffset: 8f),
    };

    /// <summary>
    /// B=1, H=8, N=4096, D=128 fp16 randn (and K with a per-channel offset of 8·randn): FP8 P·V at least as
    /// accurate as SageAttention2's Hopper kernel (relL1 ≤ 0.038, cosine ≥ 0.9992), FP16 P·V at least as
    /// accurate as its Triton kernel (relL1 ≤ 0.013).
    /// </summary>
    [Theory]
    [MemberData(nameof(LargeCases))]
    public void LargeShapeMeetsSageAttentionAccuracy(Case c)
    {
        var e = RunCase(c, seed: 4096 + c.Name.Length, checkModel: false);
        if (c.Variant.HasFp16Values())
            Assert.True(e.RelL1 <= 0.013, $"{c.Name}: relL1 {e.RelL1:F4} > 0.013");
        else
        {
            Assert.True(e.RelL1 <= 0.038, $"{c.Name}: relL1 {e.RelL1:F4} > 0.038");
            Assert.True(e.Cosine >= 0.9992, $"{c.Name}: cosine {e.Cosine:F5} < 0.9992");
        }
    }
}
