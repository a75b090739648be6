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
/// Packed (varlen) attention in one launch against float64 attention per sequence, and against the dense
/// kernel run on each sequence alone (quantization is per sequence, so both must agree to rounding order).
/// One subclass per accelerator.
/// </summary>
public abstract class VarlenAttentionKernelTests(AcceleratorFixture fixture, ITestOutputHelper log)
{
    /// <summary>Relative L1 between a sequence of the packed run and the dense run of that sequence alone.</summary>
    protected const double DenseTolerance = 1e-4;

    public sealed record Case(string Name, int[] LengthsQ, int[] LengthsK, int HeadsQ, int HeadsKv, int HeadDim,
        AttentionVariant Variant, bool Causal, TensorElementType Type = TensorElementType.Float16, bool Lse = false,
        int ExtraMaxQ = 0, bool SmoothV = false, float KOffset = 0f)
    {
        public override string ToString() => Name;
    }

    /// <summary>Runs one packed batch; returns the whole batch's (relL1, cosine) against float64 after the per-sequence dense check.</summary>
    protected (double RelL1, double Cosine) RunCase(Case c, int seed, bool checkDense = true)
    {
        var runner = fixture.Require();
        var accelerator = fixture.Accelerator!;
        var random = new Random(seed);
        int[] cuQ = TestData.Offsets(c.LengthsQ), cuK = TestData.Offsets(c.LengthsK);
        int tq = cuQ[^1], tk = cuK[^1], d = c.HeadDim;
        // [1, T, H, D] NHD storage is exactly the packed [T, H, D] tensor.
        var q = TestData.Randn(random, 1, c.HeadsQ, tq, d, c.Type, nhd: true);
        var k = TestData.Randn(random, 1, c.HeadsKv, tk, d, c.Type, nhd: true, channelOffset: c.KOffset);
        var v = TestData.Randn(random, 1, c.HeadsKv, tk, d, c.Type, nhd: true);
        float smScale = 1f / MathF.Sqrt(d);
        var options = new SageAttentionOptions { Variant = c.Variant, SmoothV = c.SmoothV };
        int maxQ = c.LengthsQ.Max() + c.ExtraMaxQ, maxK = c.LengthsK.Max();

        var (qb, qv) = fixture.Upload(q);
        var (kb, kv) = fixture.Upload(k);
        var (vb, vv) = fixture.Upload(v);
        using var ob = accelerator.Allocate1D(TestData.Poisoned(tq * c.HeadsQ * d));
        using var lseBuffer = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, c.Lse ? c.HeadsQ * tq : 1).ToArray());
        using var cuQBuffer = accelerator.Allocate1D(cuQ);
        using var cuKBuffer = accelerator.Allocate1D(cuK);
        var output = new StridedTensor(ob.View, 1, c.HeadsQ, tq, d, 0, d, (long)c.HeadsQ * d);
        using (qb) using (kb) using (vb)
        {
            runner.RunVarlen(qv, kv, vv, output, cuQBuffer.View, cuKBuffer.View, maxQ, maxK, c.Type, smScale, c.Causal,
                c.Lse ? lseBuffer.View : default, options);
        }
        var actual = ob.GetAsArray1D().Select(bits => (double)HalfBits.ToFloat(bits, c.Type)).ToArray();
        var lse = lseBuffer.GetAsArray1D();

        var (exact, exactLse) = ExactVarlenAttention.Compute(q, k, v, cuQ, cuK, smScale, c.Causal);
        var vsExact = TestData.Compare(actual, exact);
        log.WriteLine($"{c.Name}: vs float64 relL1 {vsExact.RelL1:F5} cos {vsExact.Cosine:F6} rmse {vsExact.Rmse:E2}");
        if (c.Lse)
        {
            // The LSE comes from INT8 logits: a few hundredths of a nat (the API tests' bar), far below a wrong
            // mask, a wrong sequence or a missing smoothing correction.
            for (int i = 0; i < exactLse.Length; i++)
                Assert.True(Math.Abs(lse[i] - exactLse[i]) <= 0.05 * Math.Max(1, Math.Abs(exactLse[i])), $"lse[{i}] {lse[i]} vs exact {exactLse[i]}");
        }
        if (checkDense)
            CompareWithDense(c, q, k, v, cuQ, cuK, smScale, options, actual, lse);
        return (vsExact.RelL1, vsExact.Cosine);
    }

    /// <summary>Each sequence of the packed output (and LSE) against the dense kernel on that sequence alone.</summary>
    private void CompareWithDense(Case c, HostTensor q, HostTensor k, HostTensor v, int[] cuQ, int[] cuK, float smScale,
        SageAttentionOptions options, double[] actual, float[] lse)
    {
        var runner = fixture.Runner!;
        var accelerator = fixture.Accelerator!;
        int d = c.HeadDim, hq = c.HeadsQ, tq = cuQ[^1];
        for (int s = 0; s + 1 < cuQ.Length; s++)
        {
            int lq = cuQ[s + 1] - cuQ[s], lk = cuK[s + 1] - cuK[s];
            var (qb, qv) = fixture.Upload(ExactVarlenAttention.Slice(q, cuQ[s], lq));
            var (kb, kv) = fixture.Upload(ExactVarlenAttention.Slice(k, cuK[s], lk));
            var (vb, vv) = fixture.Upload(ExactVarlenAttention.Slice(v, cuK[s], lk));
            using var ob = accelerator.Allocate1D(TestData.Poisoned(hq * lq * d));
            using var lseBuffer = accelerator.Allocate1D<float>(c.Lse ? hq * lq : 1);
            var output = new StridedTensor(ob.View, 1, hq, lq, d, (long)hq * lq * d, (long)lq * d, d);
            using (qb) using (kb) using (vb)
            {
                runner.Run(qv, kv, vv, output, c.Type, smScale, c.Causal, c.Causal ? lk - lq : 0,
                    c.Lse ? lseBuffer.View : default, options);
            }
            var dense = ob.GetAsArray1D().Select(bits => (double)HalfBits.ToFloat(bits, c.Type)).ToArray();
            var packed = new double[dense.Length];
            for (int h = 0; h < hq; h++)
                for (int i = 0; i < lq; i++)
                    Array.Copy(actual, ((long)(cuQ[s] + i) * hq + h) * d, packed, ((long)h * lq + i) * d, d);
            var agreement = TestData.Compare(packed, dense);
            Assert.True(agreement.RelL1 <= DenseTolerance, $"{c.Name}: sequence {s} differs from its dense run by relL1 {agreement.RelL1:E3}");
            if (c.Lse)
            {
                var denseLse = lseBuffer.GetAsArray1D();
                for (int h = 0; h < hq; h++)
                    for (int i = 0; i < lq; i++)
                    {
                        float a = lse[h * tq + cuQ[s] + i], e = denseLse[h * lq + i];
                        Assert.True(Math.Abs(a - e) <= 1e-4 * Math.Max(1, Math.Abs(e)), $"sequence {s} lse[{h}, {i}] {a} vs dense {e}");
                    }
            }
        }
    }

    /// <summary>The accuracy bar of the dense kernels: FP8 P·V cosine ≥ 0.998 and relL1 ≤ 0.06; FP16 P·V (mma.sync or wgmma) relL1 ≤ 0.02.</summary>
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

    /// <summary>Small batches for the CPU accelerator: lengths 1 and 65, cached prefixes (Lk &gt; Lq), GQA 2/7/8, hd 64/128.</summary>
    public static TheoryData<Case> SmallCases => new()
    {
        new Case("d64 gqa2 v2 causal prefixes lse", [1, 65, 17], [30, 100, 17], 2, 1, 64, AttentionVariant.QkInt8PvFp8, Causal: true, Lse: true, KOffset: 4f),
        new Case("d128 gqa7 v2++ bf16 non-causal smoothV", [20, 1], [20, 70], 7, 1, 128, AttentionVariant.QkInt8PvFp8Fp16Accum, Causal: false,
            Type: TensorElementType.BFloat16, SmoothV: true),
        new Case("d128 gqa8 fp16pv causal lse max+70", [12, 9], [84, 9], 8, 1, 128, AttentionVariant.QkInt8PvFp16, Causal: true, Lse: true, ExtraMaxQ: 70),
        new Case("d64 mha v2 non-causal lengths 1", [1, 1, 1], [1, 5, 64], 2, 2, 64, AttentionVariant.QkInt8PvFp8, Causal: false, Lse: true),
    };
}

/// <summary>The packed kernels on ILGPU's CPU accelerator with exact tensor-core emulation (CI).</summary>
public sealed class CpuVarlenAttentionKernelTests(CpuAcceleratorFixture fixture, ITestOutputHelper log)
    : VarlenAttentionKernelTests(fixture, log), IClassFixture<CpuAcceleratorFixture>
{
    private readonly CpuAcceleratorFixture _fixture = fixture;

    [Theory]
    [MemberData(nameof(SmallCases))]
    public void MatchesReferenceAndDenseKernel(Case c) => AssertAccuracy(c, RunCase(c, seed: c.Name.Length * 31 + c.HeadsQ));

    /// <summary>
    /// The wgmma kernel's packed form (<see cref="HopperAttentionKernel.RunPacked"/>, emulated): each sequence equal to the
    /// dense wgmma kernel on it alone, cached prefixes, a length-1 sequence, a key ring that wraps, ragged blocks, FP16 values.
    /// </summary>
    public static TheoryData<Case> HopperCases => new()
    {
        new Case("hopper d64 gqa2 causal prefixes lse", [1, 65, 17], [30, 100, 17], 2, 1, 64, AttentionVariant.HopperQkInt8PvFp8, Causal: true,
            Lse: true, KOffset: 4f),
        new Case("hopper d128 causal lse max+70 ring wraps", [130, 9], [330, 9], 2, 1, 128, AttentionVariant.HopperQkInt8PvFp8, Causal: true,
            Lse: true, ExtraMaxQ: 70),
        new Case("hopper fp16 values d128 gqa7 bf16 smoothV", [20, 1], [20, 70], 7, 1, 128, AttentionVariant.HopperQkInt8PvFp16, Causal: false,
            Type: TensorElementType.BFloat16, SmoothV: true),
    };

    [Theory]
    [MemberData(nameof(HopperCases))]
    public void HopperPackedMatchesReferenceAndDenseKernel(Case c) => AssertAccuracy(c, RunCase(c, seed: c.Name.Length * 29 + c.HeadsQ));

    /// <summary>
    /// Packed causal rows that see no key (a sequence with fewer keys than queries: bottom-right offset Lk − Lq &lt; 0) get
    /// output 0 and LSE −inf from the wgmma kernel, as from mma.sync; the rows that see keys still match float64.
    /// </summary>
    [Fact]
    public void HopperPackedRowsThatSeeNoKeyAreZero()
    {
        var runner = _fixture.Require();
        var accelerator = _fixture.Accelerator!;
        const int hq = 2, d = 64;
        int[] cuQ = [0, 90, 100], cuK = [0, 20, 50];
        var random = new Random(11);
        var q = TestData.Randn(random, 1, hq, 100, d, TensorElementType.Float16, nhd: true);
        var k = TestData.Randn(random, 1, 1, 50, d, TensorElementType.Float16, nhd: true);
        var v = TestData.Randn(random, 1, 1, 50, d, TensorElementType.Float16, nhd: true);
        var (qb, qv) = _fixture.Upload(q);
        var (kb, kv) = _fixture.Upload(k);
        var (vb, vv) = _fixture.Upload(v);
        using var ob = accelerator.Allocate1D(TestData.Poisoned(100 * hq * d));
        using var lseBuffer = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, hq * 100).ToArray());
        using var cuQBuffer = accelerator.Allocate1D(cuQ);
        using var cuKBuffer = accelerator.Allocate1D(cuK);
        var output = new StridedTensor(ob.View, 1, hq, 100, d, 0, d, (long)hq * d);
        using (qb) using (kb) using (vb)
        {
            runner.RunVarlen(qv, kv, vv, output, cuQBuffer.View, cuKBuffer.View, 90, 30, TensorElementType.Float16, 0.125f, causal: true,
                lseBuffer.View, new SageAttentionOptions { Variant = AttentionVariant.HopperQkInt8PvFp8 });
        }
        var o = ob.GetAsArray1D().Select(bits => (double)HalfBits.ToFloat(bits, TensorElementType.Float16)).ToArray();
        var lse = lseBuffer.GetAsArray1D();
        // Sequence 0: 90 queries, 20 keys, offset −70: queries 0..69 see nothing, 70..89 see 1..20 keys.
        var (exact, _) = ExactVarlenAttention.Compute(q, k, v, cuQ, cuK, 0.125, causal: true);
        var seen = new List<double>();
        var expected = new List<double>();
        for (int token = 0; token < 100; token++)
            for (int h = 0; h < hq; h++)
            {
                long row = ((long)token * hq + h) * d;
                if (token < 70)
                {
                    Assert.All(o.Skip((int)row).Take(d), x => Assert.Equal(0.0, x));
                    Assert.Equal(float.NegativeInfinity, lse[h * 100 + token]);
                }
                else
                {
                    Assert.True(float.IsFinite(lse[h * 100 + token]), $"lse[{h}, {token}] = {lse[h * 100 + token]}");
                    seen.AddRange(o.Skip((int)row).Take(d));
                    expected.AddRange(exact.Skip((int)row).Take(d));
                }
            }
        var agreement = TestData.Compare(seen.ToArray(), expected.ToArray());
        Assert.True(agreement.Cosine >= 0.998 && agreement.RelL1 <= 0.06, $"rows that see keys: relL1 {agreement.RelL1:F4} cos {agreement.Cosine:F5}");
    }

    /// <summary>
    /// cu_seqlens are trusted, not read by the host: garbage offsets (negative, past T, decreasing) must give
    /// garbage numbers at most, never a write outside the output and LSE views (guard zones stay intact).
    /// </summary>
    [Fact]
    public void GarbageCuSeqlensNeverWriteOutOfBounds()
    {
        var runner = _fixture.Require();
        var accelerator = _fixture.Accelerator!;
        const int hq = 2, hkv = 1, d = 64, tq = 40, tk = 50, guard = 4096;
        var random = new Random(5);
        var q = TestData.Randn(random, 1, hq, tq, d, TensorElementType.Float16, nhd: true);
        var k = TestData.Randn(random, 1, hkv, tk, d, TensorElementType.Float16, nhd: true);
        var v = TestData.Randn(random, 1, hkv, tk, d, TensorElementType.Float16, nhd: true);
        var (qb, qv) = _fixture.Upload(q);
        var (kb, kv) = _fixture.Upload(k);
        var (vb, vv) = _fixture.Upload(v);
        int outLength = tq * hq * d, lseLength = hq * tq;
        const ushort sentinel = 0x1234;
        using var ob = accelerator.Allocate1D(Enumerable.Repeat(sentinel, guard + outLength + guard).ToArray());
        using var lseBuffer = accelerator.Allocate1D(Enumerable.Repeat(-7f, guard + lseLength + guard).ToArray());
        using var cuQ = accelerator.Allocate1D(new[] { -100, 30, 10, 1000 });
        using var cuK = accelerator.Allocate1D(new[] { 5, -3, 49, int.MaxValue });
        var output = new StridedTensor(ob.View.SubView(guard, outLength), 1, hq, tq, d, 0, d, (long)hq * d);
        using (qb) using (kb) using (vb)
        {
            runner.RunVarlen(qv, kv, vv, output, cuQ.View, cuK.View, 40, 50, TensorElementType.Float16, 0.125f, causal: true,
                lseBuffer.View.SubView(guard, lseLength), new SageAttentionOptions());
        }
        var o = ob.GetAsArray1D();
        var l = lseBuffer.GetAsArray1D();
        Assert.All(o.Take(guard).Concat(o.Skip(guard + outLength)), x => Assert.Equal(sentinel, x));
        Assert.All(l.Take(guard).Concat(l.Skip(guard + lseLength)), x => Assert.Equal(-7f, x));
        // Something was written inside: sequence 0 clamps to tokens [0, 30).
        Assert.Contains(o.Skip(guard).Take(outLength), x => x != sentinel);
    }
}

/// <summary>The packed kernels through ILGPU's CUDA accelerator; skipped where no GPU exists.</summary>
[Trait("gpu", "true")]
[Collection(IlgpuCudaCollection.Name)]
public sealed class CudaVarlenAttentionKernelTests(CudaAcceleratorFixture fixture, ITestOutputHelper log)
    : VarlenAttentionKernelTests(fixture, log), IClassFixture<CudaAcceleratorFixture>
{
    [Theory]
    [MemberData(nameof(SmallCases))]
    public void MatchesReferenceAndDenseKernel(Case c) => AssertAccuracy(c, RunCase(c, seed: c.Name.Length * 37 + c.HeadsQ));

    /// <summary>A prefill-sized batch: lengths 1000..3000 with cached prefixes, hd 128, GQA 4, causal, every variant.</summary>
    [Theory]
    [InlineData(AttentionVariant.QkInt8PvFp8)]
    [InlineData(AttentionVariant.QkInt8PvFp8Fp16Accum)]
    [InlineData(AttentionVariant.QkInt8PvFp16)]
    public void LargeBatchMeetsAccuracy(AttentionVariant variant)
    {
        var c = new Case($"large {variant}", [1000, 3000, 1777, 2048], [1000, 3500, 2100, 2048], 8, 2, 128, variant, Causal: true,
            Lse: true, KOffset: 8f);
        AssertAccuracy(c, RunCase(c, seed: 2024, checkDense: true));
    }
}
