using SageAttn.Cli;
using SageAttn.Tests.Support;
using TorchSharp;

namespace SageAttn.Tests.Cli;

public sealed class SequenceParallelBenchCommandTests
{
    [Fact]
    public void WithoutCudaItExplainsAndFails()
    {
        if (torch.cuda.is_available())
            Assert.Skip("this machine has CUDA; the no-GPU message is tested where there is none");
        var (rc, error) = ConsoleCapture.Error(() => SequenceParallelBenchCommand.Run(["--n", "1024"]));
        Assert.Equal(1, rc);
        Assert.Contains("no CUDA device", error);
    }

    [Fact]
    public void RejectsNonPositivePartitionCounts()
    {
        var e = Assert.Throws<ArgumentException>(() => SequenceParallelBenchCommand.Run(["--gpus", "0,2"]));
        Assert.Equal("--gpus", e.ParamName);
    }
}
