using System.Globalization;
using System.Text.Json;
using SageAttn.Cli.Bench;

namespace SageAttn.Tests.Cli.Bench;

public sealed class BenchReportTests
{
    private static readonly BenchResult Sage = new("QkInt8PvFp8", 128, 1024, 16, 32, BenchDType.Float16, true,
        EndToEndMs: 2.0, KernelMs: 1.0, QuantMs: 0.5, QuantSeparateMs: 1.25, RelL1: 0.0379, Cosine: 0.99928, RelL1OutlierK: 0.04, CosineOutlierK: 0.9991,
        EndToEndHostMs: 0.125, EndToEndStreamMs: 1.0);

    private static readonly BenchResult Torch = new("torch-sdpa", 64, 2048, 8, 64, BenchDType.BFloat16, false,
        EndToEndMs: 0.5, null, null, null, RelL1: 0.0003, Cosine: 1.0, RelL1OutlierK: 0.0004, CosineOutlierK: 1.0);

    [Fact]
    public void CsvHasHeaderAndOneLinePerResultWithEmptyCellsForMissingValues()
    {
        var lines = BenchReport.Csv([Sage, Torch]).TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(3, lines.Length);
        Assert.Equal(BenchReport.CsvColumns, lines[0].Split(','));
        var sage = Cells(lines[1]);
        Assert.Equal("QkInt8PvFp8", sage["implementation"]);
        Assert.Equal("128", sage["head_dim"]);
        Assert.Equal("1024", sage["n"]);
        Assert.Equal("fp16", sage["dtype"]);
        Assert.Equal("true", sage["causal"]);
        // Causal at 2 ms: 137.438953472 / 2 TOPS; kernel at 1 ms: 137.44.
        Assert.Equal(68.72, double.Parse(sage["e2e_tops"], CultureInfo.InvariantCulture), 2);
        Assert.Equal(137.44, double.Parse(sage["kernel_tops"], CultureInfo.InvariantCulture), 2);
        Assert.Equal(1.25, double.Parse(sage["quant_separate_ms"], CultureInfo.InvariantCulture));
        Assert.Equal(0.0379, double.Parse(sage["rel_l1"], CultureInfo.InvariantCulture));
        var torch = Cells(lines[2]);
        Assert.Equal("bf16", torch["dtype"]);
        Assert.Equal("false", torch["causal"]);
        Assert.Equal(string.Empty, torch["kernel_ms"]);
        Assert.Equal(string.Empty, torch["quant_ms"]);
        Assert.Equal(0.125, double.Parse(sage["e2e_host_ms"], CultureInfo.InvariantCulture));
        Assert.Equal(string.Empty, torch["e2e_host_ms"]);
        // Back to back at 1 ms per causal call: 137.44 TOPS; not measured for the torch row here.
        Assert.Equal(137.44, double.Parse(sage["e2e_stream_tops"], CultureInfo.InvariantCulture), 2);
        Assert.Equal(string.Empty, torch["e2e_stream_ms"]);
    }

    [Fact]
    public void JsonCarriesEnvironmentOptionsAndResultsWithNulls()
    {
        var env = new BenchEnvironment("NVIDIA H100", "sm_90", "13000", "pip torch", new DateTime(2026, 11, 25, 12, 0, 0, DateTimeKind.Utc));
        var options = BenchOptions.Parse(["--quick", "--reps", "21"]);
        using var doc = JsonDocument.Parse(BenchReport.Json(env, options, [Sage, Torch]));
        var root = doc.RootElement;
        Assert.Equal("NVIDIA H100", root.GetProperty("environment").GetProperty("device").GetString());
        Assert.Equal("sm_90", root.GetProperty("environment").GetProperty("compute_capability").GetString());
        Assert.Equal(21, root.GetProperty("options").GetProperty("reps").GetInt32());
        Assert.Equal(3, root.GetProperty("options").GetProperty("lengths").GetArrayLength());
        var results = root.GetProperty("results");
        Assert.Equal(2, results.GetArrayLength());
        Assert.Equal("QkInt8PvFp8", results[0].GetProperty("implementation").GetString());
        Assert.True(results[0].GetProperty("causal").GetBoolean());
        Assert.Equal(137.438953472, results[0].GetProperty("kernel_tops").GetDouble(), 6);
        Assert.Equal(0.99928, results[0].GetProperty("cosine").GetDouble());
        Assert.Equal(JsonValueKind.Null, results[1].GetProperty("kernel_ms").ValueKind);
        Assert.Equal(JsonValueKind.Null, results[1].GetProperty("quant_ms").ValueKind);
        Assert.Equal(0.125, results[0].GetProperty("e2e_host_ms").GetDouble());
        Assert.Equal(JsonValueKind.Null, results[1].GetProperty("e2e_host_ms").ValueKind);
        Assert.Equal(1.0, results[0].GetProperty("e2e_stream_ms").GetDouble());
        Assert.Equal(JsonValueKind.Null, results[1].GetProperty("e2e_stream_tops").ValueKind);
        // bf16, hd 64, N 2048, B 8, H 64, 0.5 ms: 4·8·64·2048²·64 / 0.5e-3 / 1e12.
        Assert.Equal(4.0 * 8 * 64 * 2048.0 * 2048 * 64 / 0.5e-3 / 1e12, results[1].GetProperty("e2e_tops").GetDouble(), 6);
    }

    [Fact]
    public void TableRowShowsDashesForMissingValues()
    {
        var row = BenchTable.Row(Torch);
        Assert.StartsWith("torch-sdpa", row);
        var cells = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // implementation, hd, N, dtype, causal, e2e ms, e2e TOPS, kernel TOPS, quant ms, relL1, cosine, relL1 oK, cos oK.
        Assert.Equal(13, cells.Length);
        Assert.Equal(["-", "-"], cells[7..9]);
        Assert.Equal("0.500", cells[5]);
        Assert.Equal(13, BenchTable.Row(Sage).Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.DoesNotContain("-", BenchTable.Row(Sage).Split(' ', StringSplitOptions.RemoveEmptyEntries)[7..]);
    }

    private static Dictionary<string, string> Cells(string line) =>
        BenchReport.CsvColumns.Zip(line.Split(',')).ToDictionary(p => p.First, p => p.Second);
}
