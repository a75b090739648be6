using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SageAttn.Cli.Bench;

/// <summary>Where and on what a benchmark ran, for the JSON header.</summary>
public sealed record BenchEnvironment(string Device, string ComputeCapability, string Driver, string LibTorch, DateTime StartedUtc);

/// <summary>Writes the results as CSV (one row per implementation and shape) and as JSON (environment, options, results).</summary>
public static class BenchReport
{
    /// <summary>The CSV columns, in order.</summary>
    public static readonly string[] CsvColumns =
    [
        "implementation", "head_dim", "n", "batch", "heads", "dtype", "causal", "e2e_ms", "e2e_tops", "kernel_ms", "kernel_tops",
        "quant_ms", "quant_separate_ms", "rel_l1", "cosine", "rel_l1_outlier_k", "cosine_outlier_k", "e2e_host_ms",
        "e2e_stream_ms", "e2e_stream_tops",
    ];

    /// <summary>CSV text: a header, then one line per result; numbers in invariant culture, empty where not measured.</summary>
    public static string Csv(IEnumerable<BenchResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new StringBuilder().AppendLine(string.Join(',', CsvColumns));
        foreach (var r in results)
        {
            text.AppendLine(string.Join(',',
                r.Implementation, Int(r.HeadDim), Int(r.N), Int(r.Batch), Int(r.Heads), r.DTypeName, r.Causal ? "true" : "false",
                Num(r.EndToEndMs, "F4"), Num(r.EndToEndTops, "F2"), Num(r.KernelMs, "F4"), Num(r.KernelTops, "F2"),
                Num(r.QuantMs, "F4"), Num(r.QuantSeparateMs, "F4"), Num(r.RelL1, "G6"), Num(r.Cosine, "G8"),
                Num(r.RelL1OutlierK, "G6"), Num(r.CosineOutlierK, "G8"), Num(r.EndToEndHostMs, "F4"),
                Num(r.EndToEndStreamMs, "F4"), Num(r.EndToEndStreamTops, "F2")));
        }
        return text.ToString();
    }

    /// <summary>JSON text: {"environment": {...}, "options": {...}, "results": [...]}, nulls where not measured.</summary>
    public static string Json(BenchEnvironment environment, BenchOptions options, IEnumerable<BenchResult> results)
    {
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(results);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartObject("environment");
            w.WriteString("device", environment.Device);
            w.WriteString("compute_capability", environment.ComputeCapability);
            w.WriteString("driver", environment.Driver);
            w.WriteString("libtorch", environment.LibTorch);
            w.WriteString("started_utc", environment.StartedUtc.ToString("O", CultureInfo.InvariantCulture));
            w.WriteEndObject();
            w.WriteStartObject("options");
            WriteInts(w, "head_dims", options.HeadDims);
            WriteInts(w, "lengths", options.Lengths);
            w.WriteStartArray("dtypes");
            foreach (var d in options.DTypes) w.WriteStringValue(d == BenchDType.Float16 ? "fp16" : "bf16");
            w.WriteEndArray();
            w.WriteStartArray("causal");
            foreach (var c in options.Causal) w.WriteBooleanValue(c);
            w.WriteEndArray();
            w.WriteStartArray("variants");
            foreach (var v in options.Variants) w.WriteStringValue(v.ToString());
            w.WriteEndArray();
            w.WriteBoolean("torch_sdpa", options.Torch);
            w.WriteNumber("reps", options.Reps);
            w.WriteNumber("warmup", options.Warmup);
            w.WriteNumber("input_sets", options.InputSets);
            w.WriteNumber("accuracy_rows_per_head", options.AccuracyRows);
            w.WriteString("timing", "CUDA events on libtorch's stream around each call; median of reps");
            w.WriteString("tops", "4*B*H*N^2*D / time, halved for causal");
            w.WriteEndObject();
            w.WriteStartArray("results");
            foreach (var r in results)
            {
                w.WriteStartObject();
                w.WriteString("implementation", r.Implementation);
                w.WriteNumber("head_dim", r.HeadDim);
                w.WriteNumber("n", r.N);
                w.WriteNumber("batch", r.Batch);
                w.WriteNumber("heads", r.Heads);
                w.WriteString("dtype", r.DTypeName);
                w.WriteBoolean("causal", r.Causal);
                Number(w, "e2e_ms", r.EndToEndMs);
                Number(w, "e2e_tops", r.EndToEndTops);
                Number(w, "kernel_ms", r.KernelMs);
                Number(w, "kernel_tops", r.KernelTops);
                Number(w, "quant_ms", r.QuantMs);
                Number(w, "quant_separate_ms", r.QuantSeparateMs);
                Number(w, "rel_l1", r.RelL1);
                Number(w, "cosine", r.Cosine);
                Number(w, "rel_l1_outlier_k", r.RelL1OutlierK);
                Number(w, "cosine_outlier_k", r.CosineOutlierK);
                Number(w, "e2e_host_ms", r.EndToEndHostMs);
                Number(w, "e2e_stream_ms", r.EndToEndStreamMs);
                Number(w, "e2e_stream_tops", r.EndToEndStreamTops);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteInts(Utf8JsonWriter w, string name, IEnumerable<int> values)
    {
        w.WriteStartArray(name);
        foreach (int v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    /// <summary>A number, or null when absent or not finite (JSON has no NaN).</summary>
    private static void Number(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v && double.IsFinite(v))
            w.WriteNumber(name, v);
        else
            w.WriteNull(name);
    }

    private static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Num(double? value, string format) =>
        value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : string.Empty;
}
