using SageAttn.Cli;
using SageAttn.Tests.Support;
using TorchSharp;

namespace SageAttn.Tests.Cli;

/// <summary><c>sageattn bench-prefill</c>: its options are checked before anything runs, and without CUDA it says so.</summary>
public sealed class PrefillBenchCommandTests
{
    [Fact]
    public void WithoutCudaItExplainsAndFails()
    {
        if (torch.cuda.is_available())
            Assert.Skip("this machine has CUDA; the no-GPU message is tested where there is none");
        var (rc, error) = ConsoleCapture.Error(() => PrefillBenchCommand.Run(["--lengths", "64,128"]));
        Assert.Equal(1, rc);
        Assert.Contains("no CUDA", error);
    }

    [Theory]
    [InlineData("--variants", "QkInt8PvFp8,Bogus")]
    [InlineData("--prefix", "-1")]
    public void RejectsBadOptionsNamingThem(string name, string value)
    {
        var e = Assert.Throws<ArgumentException>(() => PrefillBenchCommand.Run([name, value]));
        Assert.Equal(name, e.ParamName);
    }
}
