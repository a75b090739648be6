using SageAttn.Cli;
using TorchSharp;

namespace SageAttn.Tests.Cli.Bench;

public sealed class BenchCommandTests
{
    [Fact]
    public void WithoutGpuExitsNonZeroWithAClearMessageAndWritesNothing()
    {
        if (torch.cuda.is_available())
            Assert.Skip("this machine has CUDA: the benchmark would run (it is exercised by the GPU session instead)");
        string dir = Path.Combine(Path.GetTempPath(), "sageattn-bench-" + Guid.NewGuid().ToString("N"));
        using var output = new StringWriter();
        using var error = new StringWriter();

        int rc = BenchCommand.Run(["--quick", "--out", dir], output, error, interactive: false);

        Assert.Equal(1, rc);
        Assert.Contains("no CUDA device", error.ToString());
        Assert.False(Directory.Exists(dir));
    }

    [Fact]
    public void BadOptionsThrowBeforeTouchingTheDevice()
    {
        var e = Assert.Throws<ArgumentException>(() => BenchCommand.Run(["--n", "x"], TextWriter.Null, TextWriter.Null, interactive: false));
        Assert.Equal("--n", e.ParamName);
    }
}
