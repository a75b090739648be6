using SageAttn.Cli;
using TorchSharp;

namespace SageAttn.Tests.Cli;

public sealed class SequenceParallelBenchCommandTests
{
    [Fact]
    public void WithoutCudaItExplainsAndFails()
    {
        if (torch.cuda.is_available())
            Assert.Skip("this machine has CUDA; the no-GPU message is tested where there is none");
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(1, SequenceParallelBenchCommand.Run(["--n", "1024"]));
        }
        finally
        {
            Console.SetError(saved);
        }
        Assert.Contains("no CUDA device", error.ToString());
    }

    [Fact]
    public void RejectsNonPositivePartitionCounts()
    {
        var e = Assert.Throws<ArgumentException>(() => SequenceParallelBenchCommand.Run(["--gpus", "0,2"]));
        Assert.Equal("--gpus", e.ParamName);
    }
}
