using System.Globalization;

namespace SageAttn.Cli.Bench;

/// <summary>The console table: one row per implementation and shape, printed as results arrive.</summary>
public static class BenchTable
{
    /// <summary>The header line.</summary>
    public static string Header =>
        $"{"implementation",-22} {"hd",3} {"N",6} {"dtype",5} {"causal",6} {"e2e ms",9} {"e2e TOPS",8} {"kern TOPS",9} {"quant ms",8} " +
        $"{"relL1",7} {"cosine",8} {"relL1 oK",8} {"cos oK",8}";

    /// <summary>One result as a table row ("-" where not measured).</summary>
    public static string Row(BenchResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return string.Create(CultureInfo.InvariantCulture,
            $"{r.Implementation,-22} {r.HeadDim,3} {r.N,6} {r.DTypeName,5} {(r.Causal ? "yes" : "no"),6} {r.EndToEndMs,9:F3} {r.EndToEndTops,8:F1} " +
            $"{Cell(r.KernelTops, "F1"),9} {Cell(r.QuantMs, "F3"),8} {Cell(r.RelL1, "F4"),7} {Cell(r.Cosine, "F5"),8} " +
            $"{Cell(r.RelL1OutlierK, "F4"),8} {Cell(r.CosineOutlierK, "F5"),8}");
    }

    private static string Cell(double? value, string format) =>
        value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";
}
