using SageAttn.Backend;
using SageAttn.Cli;
using SageAttn.Models.Weights;
using SageAttn.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Cli;

/// <summary>The info and run commands in process, on CPU tensors.</summary>
public sealed class CliCommandTests
{
    [Fact]
    public void DemoRunsEveryVariantOnCpuTensorsWithinTheAccuracyBar()
    {
        using var writer = new StringWriter();
        Assert.Equal(0, DemoCommand.Run(["--cpu"], writer));
        var lines = writer.ToString().Split('\n');
        foreach (var variant in Enum.GetValues<SageAttn.Kernels.Attention.AttentionVariant>())
        {
            var line = Assert.Single(lines, l => l.StartsWith(variant.ToString() + " ", StringComparison.Ordinal));
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            double relL1 = double.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
            double cosine = double.Parse(fields[2], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(relL1 <= 0.06 && cosine >= 0.998, line);
        }
    }

    [Fact]
    public void InfoReportsLibTorchAndCpuAccelerator()
    {
        var (rc, text) = ConsoleCapture.Out(() => InfoCommand.Run([]));
        Assert.Equal(0, rc);
        Assert.Contains("libtorch:", text);
        Assert.Contains("ILGPU CPU accelerator", text);
    }

    [Fact]
    public void RunReadsQkvAndWritesOutputAndLse()
    {
        using var generator = new torch.Generator(11);
        string dir = Directory.CreateTempSubdirectory("sageattn-cli").FullName;
        string input = Path.Combine(dir, "qkv.safetensors"), output = Path.Combine(dir, "out.safetensors");
        using var q = TorchReference.Randn(generator, [1, 70, 2, 64], ScalarType.Float16, torch.CPU);
        using var k = TorchReference.Randn(generator, [1, 90, 1, 64], ScalarType.Float16, torch.CPU);
        using var v = TorchReference.Randn(generator, [1, 90, 1, 64], ScalarType.Float16, torch.CPU);
        SafeTensorsFile.Write(input, new Dictionary<string, Tensor> { ["q"] = q, ["k"] = k, ["v"] = v });

        int rc = RunCommand.Run(["--in", input, "--out", output, "--layout", "NHD", "--causal", "--lse", "--cpu", "--smooth-k", "on"]);

        Assert.Equal(0, rc);
        var result = SafeTensorsFile.Read(output);
        using var o = result["out"];
        using var lse = result["lse"];
        Assert.Equal(new long[] { 1, 70, 2, 64 }, o.shape);
        Assert.Equal(ScalarType.Float16, o.dtype);
        Assert.Equal(new long[] { 1, 2, 70 }, lse.shape);
        var (reference, referenceLse) = TorchReference.Attention(q, k, v, nhd: true, causal: true, 20, null);
        using var _ = reference;
        using var __ = referenceLse;
        using var hnd = o.permute(0, 2, 1, 3);
        var (relL1, cosine, _) = TorchReference.Compare(hnd, reference);
        Assert.True(relL1 <= 0.06 && cosine >= 0.998, $"relL1 {relL1:F4}, cosine {cosine:F5}");
    }

    [Fact]
    public void RunRejectsUnknownVariant()
    {
        var e = Assert.Throws<ArgumentException>(() => RunCommand.Run(["--in", "x", "--out", "y", "--variant", "Fp4"]));
        Assert.Equal("--variant", e.ParamName);
    }
}
