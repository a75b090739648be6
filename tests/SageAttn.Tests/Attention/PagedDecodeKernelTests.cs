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

    /// <summary>Runs the kernel on the problem's cache with the given tables and lengths; returns O as doubles, the LSE and the split.</summary>
    protected (double[] Output, float[] Lse, PagedDecodeSplit Split) Decode(PagedDecodeProblem problem, int[] blockTables, int[] seqLens,
        int maxSeqLen, int? splits)
    {
        var runner = Runner();
        var accelerator = fixture.Accelerator!;
        var shape = PagedDecodeShape.Of(problem.Batch, problem.HeadsQ, problem.HeadsKv, problem.HeadDim, problem.NumBlocks, problem.BlockSize,
            problem.MaxBlocksPerSeq, maxSeqLen);
        int rows = problem.Batch * problem.HeadsQ;
        using var q = accelerator.Allocate1D(problem.Q);
        using var k = accelerator.Allocate1D(problem.KCache);
        using var v = accelerator.Allocate1D(problem.VCache);
        using var tables = accelerator.Allocate1D(blockTables);
        using var lens = accelerator.Allocate1D(seqLens);
        using var o = accelerator.Allocate1D(TestData.Poisoned(rows * problem.HeadDim));
        using var lse = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, rows).ToArray());
        long rowStride = (long)problem.HeadsQ * problem.HeadDim;
        var buffers = new PagedDecodeBuffers(q.View, rowStride, problem.HeadDim, k.View, v.View, tables.View, lens.View,
            o.View, rowStride, problem.HeadDim, lse.View);
        var split = runner.Decode(buffers, shape, problem.Type, 1f / MathF.Sqrt(problem.HeadDim), splits);
        return (o.GetAsArray1D().Select(bits => (double)HalfBits.ToFloat(bits, problem.Type)).ToArray(), lse.GetAsArray1D(), split);
    }

    protected void RunCase(Case c, int seed)
    {
        var problem = PagedDecodeProblem.Create(new Random(seed), c.SeqLens, c.HeadsQ, c.HeadsKv, c.HeadDim, c.BlockSize, c.Type, c.KOffset);
        int rows = problem.Batch * c.HeadsQ;
        var (actual, actualLse, split) = Decode(problem, problem.BlockTables, problem.SeqLens, problem.MaxSeqLen, c.Splits);
        var (expected, expectedLse) = problem.Reference(1.0 / MathF.Sqrt(c.HeadDim));
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

    /// <summary>
    /// Out-of-range block-table entries are clamped into the cache (read block NumBlocks − 1 or 0, never outside), and seq_lens
    /// above max_seq_len are clamped to it: the result equals the reference on the clamped indices.
    /// </summary>
    protected void RunOutOfRangeIndices(int? splits)
    {
        var random = new Random(77);
        var problem = PagedDecodeProblem.Create(random, [70, 40], 4, 2, 64, 16, TensorElementType.Float16);
        // Give the first and last physical blocks finite contents everywhere, so a clamped read is well defined.
        int blockElements = problem.HeadsKv * problem.BlockSize * problem.HeadDim;
        foreach (int block in new[] { 0, problem.NumBlocks - 1 })
            for (int i = 0; i < blockElements; i++)
            {
                problem.KCache[block * blockElements + i] = HalfBits.FromFloat(TestData.Gaussian(random), problem.Type);
                problem.VCache[block * blockElements + i] = HalfBits.FromFloat(TestData.Gaussian(random), problem.Type);
            }
        var kernelTables = (int[])problem.BlockTables.Clone();
        kernelTables[problem.MaxBlocksPerSeq + 1] = int.MaxValue;
        kernelTables[problem.MaxBlocksPerSeq + 2] = -5;
        var clampedTables = (int[])problem.BlockTables.Clone();
        clampedTables[problem.MaxBlocksPerSeq + 1] = problem.NumBlocks - 1;
        clampedTables[problem.MaxBlocksPerSeq + 2] = 0;
        var clamped = new PagedDecodeProblem
        {
            Batch = problem.Batch, HeadsQ = problem.HeadsQ, HeadsKv = problem.HeadsKv, HeadDim = problem.HeadDim, BlockSize = problem.BlockSize,
            NumBlocks = problem.NumBlocks, MaxBlocksPerSeq = problem.MaxBlocksPerSeq, Type = problem.Type, SeqLens = problem.SeqLens,
            BlockTables = clampedTables, Q = problem.Q, KCache = problem.KCache, VCache = problem.VCache,
        };

        // Request 0 claims 9 more tokens than max_seq_len allows (its extra keys would hit the NaN rows of its last block).
        var (actual, _, _) = Decode(problem, kernelTables, [79, 40], maxSeqLen: 70, splits);
        var (expected, _) = clamped.Reference(1.0 / 8);
        var e = TestData.Compare(actual, expected);
        Assert.True(e.RelL1 <= 1e-3, $"relL1 {e.RelL1:E3}");
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

    [Theory]
    [InlineData(null)]
    [InlineData(2)]
    public void OutOfRangeIndicesAreClamped(int? splits) => RunOutOfRangeIndices(splits);
}

/// <summary>The decode kernel through ILGPU's CUDA accelerator (mma.sync on the GPU); skipped where no GPU exists.</summary>
[Trait("gpu", "true")]
[Collection(IlgpuCudaCollection.Name)]
public sealed class CudaPagedDecodeKernelTests(CudaAcceleratorFixture fixture, ITestOutputHelper log)
    : PagedDecodeKernelTests(fixture, log), IClassFixture<CudaAcceleratorFixture>
{
    [Theory]
    [MemberData(nameof(SmallCases))]
    public void MatchesFloat64Reference(Case c) => RunCase(c, seed: c.Name.Length * 137 + c.HeadDim);

    [Theory]
    [InlineData(null)]
    [InlineData(2)]
    public void OutOfRangeIndicesAreClamped(int? splits) => RunOutOfRangeIndices(splits);

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
