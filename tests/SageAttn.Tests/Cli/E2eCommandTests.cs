using System.Globalization;
using SageAttn.Cli;

namespace SageAttn.Tests.Cli;

/// <summary><c>sageattn e2e</c> in process on the CPU with tiny presets.</summary>
public sealed class E2eCommandTests
{
    [Fact]
    public void BothBackendsReportTimingsAndAgreeOnTheTinyPreset()
    {
        using var writer = new StringWriter();

        int rc = E2eCommand.Run(["--model", "tiny-ernie-4.5", "--backend", "both", "--prompt", "40", "--batch", "2", "--decode", "4", "--cpu"], writer);

        Assert.Equal(0, rc);
        var lines = writer.ToString().Split('\n');
        foreach (var backend in new[] { "SDPA", "SAGE_ATTN" })
        {
            var fields = Assert.Single(lines, l => l.StartsWith(backend + " ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(double.Parse(fields[1], CultureInfo.InvariantCulture) > 0, $"{backend} prefill ms: {fields[1]}");
            Assert.EndsWith("%", fields[4]); // attention share of the prefill
            Assert.True(double.Parse(fields[6], CultureInfo.InvariantCulture) > 0, $"{backend} decode tok/s: {fields[6]}");
        }

        var agreement = Assert.Single(lines, l => l.StartsWith("agreement SAGE_ATTN vs SDPA", StringComparison.Ordinal));
        // The CPU default variant (FP8 P·V) on a random tiny model: close, not the acceptance bar (SageVsSdpaModelTests has that).
        foreach (var kind in new[] { "prefill", "decode" })
        {
            double cosine = double.Parse(agreement.Split($"{kind} logits cosine ")[1].Split(' ')[0], CultureInfo.InvariantCulture);
            Assert.True(cosine >= 0.99, agreement);
        }

        Assert.Contains("of 10 choices)", agreement); // 2 requests x (prefill + 4 decode steps)
        Assert.Contains("prompt 40 tokens x batch 2 = 80 prefill tokens", writer.ToString());
    }

    [Theory]
    [InlineData(new[] { "--model", "tiny-qwen3", "--backend", "flash" }, "--backend")]
    [InlineData(new[] { "--model", "gpt-2" }, "--model")]
    [InlineData(new[] { "--model", "tiny-qwen3", "--prompt", "0" }, "--prompt")]
    [InlineData(new[] { "--model", "tiny-qwen3", "--batch", "x" }, "--batch")]
    [InlineData(new[] { "--model", "tiny-qwen3", "--dtype", "fp32" }, "--dtype")]
    [InlineData(new[] { "--model", "tiny-qwen3", "--weights", "/no/such/dir" }, "--weights")]
    [InlineData(new[] { "--model", "tiny-qwen3", "--variant", "QkInt9" }, "--variant")]
    public void BadOptionsThrowNamingTheOption(string[] args, string option)
    {
        var e = Assert.Throws<ArgumentException>(() => E2eCommand.Run(args, TextWriter.Null));
        Assert.Equal(option, e.ParamName);
    }
}
