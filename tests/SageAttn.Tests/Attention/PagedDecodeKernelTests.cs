using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Attention;

/// <summary>
/// The paged decode kernel (split and direct paths, with the LSE merge) against float64 attention over keys gathered
/// through shuffled block tables. One subclass per accelerator.
/// </summary>
public abstract class PagedDecodeKernelTests(AcceleratorFixture fixture, ITestOutputHelper log)
{
    public sealed record Case(string Name, int[] SeqLens, int HeadsQ, int HeadsKv, int HeadDim, int BlockSize,
        TensorElementType Type = TensorElementType.Float16, int? Splits = null, float KOffset = 0f)
    {
        public override string ToString() => Name;
    }

    /// <summary>
    /// Bars against float64. FP16: P and the output are rounded to fp16 (unit roundoff 2⁻¹¹), measured relL1 ≈ 1e-4..3e-4 —
    /// bar 1e-3. BF16: P and the output keep 8 significant bits (2⁻⁸), measured ≈ 2e-3 — bar 6e-3. LSE: FP32 state,
    /// |Δ| ≤ 2e-3 · max(1, |LSE|).
    /// </summary>
    protected static (double RelL1, double Cosine) Bar(TensorElementType type) =>
        type == TensorElementType.Float16 ? (1e-3, 0.99999) : (6e-3, 0.9999);

    private PagedDecodeRunner? _runner;

    protected PagedDecodeRunner Runner()
    {
        fixture.Require();
        return _runner ??= new PagedDecodeRunner(fixture.Accelerator!);
    }

    protected void RunCase(Case c, int seed)
    {
        var runner = Runner();
        var accelerator = fixture.Accelerator!;
        var problem = PagedDecodeProblem.Create(new Random(seed), c.SeqLens, c.HeadsQ, c.HeadsKv, c.HeadDim, c.BlockSize, c.Type, c.KOffset);
        var shape = PagedDecodeShape.Of(problem.Batch, c.HeadsQ, c.HeadsKv, c.HeadDim, problem.NumBlocks, c.BlockSize,
            problem.MaxBlocksPerSeq, problem.MaxSeqLen);
        float smScale = 1f / MathF.Sqrt(c.HeadDim);
        int rows = problem.Batch * c.HeadsQ;

        using var q = accelerator.Allocate1D(problem.Q);
        using var k = accelerator.Allocate1D(problem.KCache);
        using var v = accelerator.Allocate1D(problem.VCache);
        using var tables = accelerator.Allocate1D(problem.BlockTables);
        using var lens = accelerator.Allocate1D(problem.SeqLens);
        using var o = accelerator.Allocate1D(TestData.Poisoned(rows * c.HeadDim));
        using var lse = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, rows).ToArray());
        var buffers = new PagedDecodeBuffers(q.View, (long)c.HeadsQ * c.HeadDim, c.HeadDim, k.View, v.View, tables.View, lens.View,
            o.View, (long)c.HeadsQ * c.HeadDim, c.HeadDim, lse.View);
        var split = runner.Decode(buffers, shape, c.Type, smScale, c.Splits);

        var actual = o.GetAsArray1D().Select(bits => (double)HalfBits.ToFloat(bits, c.Type)).ToArray();
        var actualLse = lse.GetAsArray1D();
        var (expected, expectedLse) = problem.Reference(smScale);
        // A forced split must really take the split path (the cases force more splits than one 64-key step).
        if (c.Splits is int forced)
            Assert.Equal(forced > 1, split.Splits > 1);

        // Rows with no keys: zeros and −∞, exactly.
        for (int r = 0; r < rows; r++)
        {
            if (problem.SeqLens[r / c.HeadsQ] != 0)
                continue;
            for (int ch = 0; ch < c.HeadDim; ch++)
                Assert.True(actual[r * c.HeadDim + ch] == 0, $"{c.Name}: empty row {r} channel {ch} is {actual[r * c.HeadDim + ch]}, not 0");
            Assert.True(float.IsNegativeInfinity(actualLse[r]), $"{c.Name}: empty row {r} LSE is {actualLse[r]}, not −∞");
        }
        for (int r = 0; r < rows; r++)
        {
            if (problem.SeqLens[r / c.HeadsQ] == 0)
                continue;
            Assert.True(Math.Abs(actualLse[r] - expectedLse[r]) <= 2e-3 * Math.Max(1, Math.Abs(expectedLse[r])),
                $"{c.Name}: LSE row {r} {actualLse[r]} vs {expectedLse[r]}");
        }
        if (problem.SeqLens.All(n => n == 0))
            return;
        var e = TestData.Compare(actual, expected);
        log.WriteLine($"{c.Name}: splits {split.Splits} × {split.KeysPerSplit} keys; relL1 {e.RelL1:E2} cos {e.Cosine:F6} rmse {e.Rmse:E2}");
        var (relL1, cosine) = Bar(c.Type);
        Assert.True(e.RelL1 <= relL1, $"{c.Name}: relL1 {e.RelL1:E3} > {relL1}");
        Assert.True(e.Cosine >= cosine, $"{c.Name}: cosine {e.Cosine:F6} < {cosine}");
    }

    /// <summary>Small cases covering the matrix of the issue (CPU accelerator in CI).</summary>
    public static TheoryData<Case> SmallCases => new()
    {
        new Case("d64 bs16 gqa1 lens 1,17,48", [1, 17, 48], 2, 2, 64, 16),
        new Case("d128 bs64 gqa2 lens 64,130", [64, 130], 4, 2, 128, 64),
        new Case("d64 bs16 gqa7 bf16 lens 300,33", [300, 33], 7, 1, 64, 16, TensorElementType.BFloat16),
        new Case("d128 bs16 gqa8 lens 5,256 split 3", [5, 256], 8, 1, 128, 16, Splits: 3),
        new Case("d64 bs64 gqa8 bf16 lens 200,64,0 split 4", [200, 64, 0], 16, 2, 64, 64, TensorElementType.BFloat16, Splits: 4),
        new Case("d128 bs32 gqa7 K-bias lens 161 split 2", [161], 7, 1, 128, 32, KOffset: 8f, Splits: 2),
        new Case("d64 bs16 all empty", [0, 0], 2, 1, 64, 16),
    };
}

/// <summary>The decode kernel on ILGPU's CPU accelerator with the exact tensor-core emulation (CI).</summary>
public sealed class CpuPagedDecodeKernelTests(CpuAcceleratorFixture fixture, ITestOutputHelper log)
    : PagedDecodeKernelTests(fixture, log), IClassFixture<CpuAcceleratorFixture>
{
    [Theory]
    [MemberData(nameof(SmallCases))]
    public void MatchesFloat64Reference(Case c) => RunCase(c, seed: c.Name.Length * 131 + c.HeadDim);
}

/// <summary>The decode kernel through ILGPU's CUDA accelerator (mma.sync on the GPU); skipped where no GPU exists.</summary>
[Trait("gpu", "true")]
public sealed class CudaPagedDecodeKernelTests(CudaAcceleratorFixture fixture, ITestOutputHelper log)
    : PagedDecodeKernelTests(fixture, log), IClassFixture<CudaAcceleratorFixture>
{
    [Theory]
    [MemberData(nameof(SmallCases))]
    public void MatchesFloat64Reference(Case c) => RunCase(c, seed: c.Name.Length * 137 + c.HeadDim);

    public static TheoryData<Case> LongCases => new()
    {
        new Case("32K B4 d128 gqa8 auto split", [32768, 32768, 20000, 777], 64, 8, 128, 64),
        new Case("32K B4 d128 gqa8 bf16 auto split", [32768, 1, 32767, 4096], 64, 8, 128, 64, TensorElementType.BFloat16),
        new Case("8K B2 d64 gqa7 bs16 no split", [8192, 5000], 28, 4, 64, 16, Splits: 1),
    };

    /// <summary>Long contexts (the split path chosen from the SM count) against float64.</summary>
    [Theory]
    [MemberData(nameof(LongCases))]
    public void LongContextMatchesFloat64Reference(Case c) => RunCase(c, seed: 32768 + c.Name.Length);
}
