using SageAttn.Cli.Bench;
using SageAttn.Kernels.Attention;

namespace SageAttn.Tests.Cli.Bench;

public sealed class BenchOptionsTests
{
    [Fact]
    public void DefaultsCoverTheIssueMatrixAndEveryVariant()
    {
        var o = BenchOptions.Parse([]);
        Assert.Equal([64, 128], o.HeadDims);
        Assert.Equal([1024, 2048, 4096, 8192, 16384, 32768], o.Lengths);
        Assert.Equal([BenchDType.Float16, BenchDType.BFloat16], o.DTypes);
        Assert.Equal([false, true], o.Causal);
        // The list follows the enum, so a variant added later is benchmarked without touching the bench.
        Assert.Equal(Enum.GetValues<AttentionVariant>(), o.Variants);
        Assert.True(o.Torch);
        Assert.True(o.Reps >= 20);
        Assert.True(o.InputSets >= 3);
    }

    [Fact]
    public void ParsesListsAndFlags()
    {
        var o = BenchOptions.Parse(["--hd", "64", "--n", "2048,8192", "--dtype", "bf16", "--causal", "on", "--variants",
            "QkInt8PvFp16,qkint8pvfp8", "--no-torch", "--reps", "25", "--warmup", "0", "--inputs", "4", "--accuracy-rows", "8", "--out", "/tmp/x"]);
        Assert.Equal([64], o.HeadDims);
        Assert.Equal([2048, 8192], o.Lengths);
        Assert.Equal([BenchDType.BFloat16], o.DTypes);
        Assert.Equal([true], o.Causal);
        Assert.Equal([AttentionVariant.QkInt8PvFp16, AttentionVariant.QkInt8PvFp8], o.Variants);
        Assert.False(o.Torch);
        Assert.Equal(25, o.Reps);
        Assert.Equal(0, o.Warmup);
        Assert.Equal(4, o.InputSets);
        Assert.Equal(8, o.AccuracyRows);
        Assert.Equal("/tmp/x", o.OutputDirectory);
    }

    [Fact]
    public void QuickIsSmallAndLaterOptionsStillApply()
    {
        var quick = BenchOptions.Parse(["--quick"]);
        Assert.Equal([128], quick.HeadDims);
        Assert.Equal([BenchDType.Float16], quick.DTypes);
        Assert.True(quick.Lengths.Count < BenchOptions.AllLengths.Length);
        Assert.Equal([1024], BenchOptions.Parse(["--quick", "--n", "1024"]).Lengths);
    }

    [Theory]
    [InlineData("--hd", "96")]
    [InlineData("--n", "0")]
    [InlineData("--n", "abc")]
    [InlineData("--dtype", "fp32")]
    [InlineData("--causal", "maybe")]
    [InlineData("--variants", "QkInt4")]
    [InlineData("--reps", "-1")]
    [InlineData("--inputs", "0")]
    [InlineData("--frobnicate", "1")]
    public void RejectsBadValuesNamingTheOption(string name, string value)
    {
        var e = Assert.Throws<ArgumentException>(() => BenchOptions.Parse([name, value]));
        Assert.Equal(name, e.ParamName);
    }

    [Fact]
    public void RejectsAMissingValue()
    {
        var e = Assert.Throws<ArgumentException>(() => BenchOptions.Parse(["--reps"]));
        Assert.Equal("--reps", e.ParamName);
    }

    [Fact]
    public void ShapesFollowTheAnchors()
    {
        Assert.Equal(16, BenchOptions.BatchFor(1024));
        Assert.Equal(1, BenchOptions.BatchFor(16384));
        Assert.Equal(1, BenchOptions.BatchFor(32768));
        Assert.Equal(32, BenchOptions.HeadsFor(128));
        Assert.Equal(64, BenchOptions.HeadsFor(64));
    }
}
