using System.Globalization;

namespace SageAttn.Cli.Bench;

/// <summary>
/// The benchmark chart: TOPS against sequence length (log scale), one panel per (dtype, head dim, causal), one colour
/// per implementation; solid lines end to end, dashed lines the attention kernel alone.
/// </summary>
public static class TopsChart
{
    public const int PanelWidth = 560, PanelHeight = 380;
    private const int Left = 64, Right = 16, Top = 34, Bottom = 44, Scale = 2, LegendRow = 22;

    private static readonly Rgb Ink = new(30, 30, 30), Grid = new(225, 225, 225), Axis = new(120, 120, 120);
    private static readonly Rgb[] Palette =
    [
        new(70, 70, 70), new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189), new(140, 86, 75),
    ];

    /// <summary>Draws the chart of <paramref name="results"/>.</summary>
    /// <exception cref="ArgumentException">No results.</exception>
    public static Canvas Render(IReadOnlyList<BenchResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (results.Count == 0)
            throw new ArgumentException("nothing to chart.", nameof(results));
        var panels = results.GroupBy(r => (r.DType, r.HeadDim, r.Causal)).OrderBy(g => g.Key.DType).ThenBy(g => g.Key.HeadDim).ThenBy(g => g.Key.Causal).ToArray();
        var implementations = results.Select(r => r.Implementation).Distinct()
            .OrderBy(name => name == "torch-sdpa" ? 0 : 1).ThenBy(name => name, StringComparer.Ordinal).ToArray();
        int columns = Math.Min(2, panels.Length), rows = (panels.Length + columns - 1) / columns;
        int legendHeight = 16 + LegendRow * (implementations.Length + 1);
        var canvas = new Canvas(columns * PanelWidth, rows * PanelHeight + legendHeight);
        for (int i = 0; i < panels.Length; i++)
        {
            var (dtype, hd, causal) = panels[i].Key;
            string title = $"HD{hd} {(dtype == BenchDType.Float16 ? "FP16" : "BF16")} {(causal ? "CAUSAL" : "NON-CAUSAL")}";
            DrawPanel(canvas, i % columns * PanelWidth, i / columns * PanelHeight, title, panels[i].ToArray(), implementations);
        }
        int y = rows * PanelHeight + 8;
        canvas.Text(12, y, "SOLID: END TO END (QUANTIZATION INCLUDED)   DASHED: KERNEL ONLY   Y: TOPS", Ink, Scale);
        for (int i = 0; i < implementations.Length; i++)
        {
            int ly = y + LegendRow * (i + 1);
            var color = Palette[i % Palette.Length];
            canvas.Line(12, ly + 7, 52, ly + 7, color, thickness: 3);
            canvas.Text(62, ly, implementations[i], Ink, Scale);
        }
        return canvas;
    }

    private static void DrawPanel(Canvas canvas, int x0, int y0, string title, BenchResult[] results, string[] implementations)
    {
        int plotX = x0 + Left, plotY = y0 + Top, plotW = PanelWidth - Left - Right, plotH = PanelHeight - Top - Bottom;
        canvas.Text(x0 + (PanelWidth - BitmapFont.Measure(title, Scale)) / 2, y0 + 8, title, Ink, Scale);
        var lengths = results.Select(r => r.N).Distinct().Order().ToArray();
        double minLog = Math.Log2(lengths[0]), maxLog = Math.Log2(lengths[^1]);
        if (maxLog - minLog < 1e-9) { minLog -= 0.5; maxLog += 0.5; }
        double top = NiceCeiling(results.Max(r => Math.Max(r.EndToEndTops, r.KernelTops ?? 0)) * 1.05);
        int X(int n) => plotX + (int)Math.Round((Math.Log2(n) - minLog) / (maxLog - minLog) * plotW);
        int Y(double tops) => plotY + plotH - (int)Math.Round(Math.Clamp(tops / top, 0, 1) * plotH);

        for (int g = 0; g <= 5; g++)
        {
            double value = top * g / 5;
            int y = Y(value);
            canvas.Line(plotX, y, plotX + plotW, y, Grid);
            string label = value.ToString(value >= 10 || value == 0 ? "F0" : "F1", CultureInfo.InvariantCulture);
            canvas.Text(plotX - 6 - BitmapFont.Measure(label, Scale), y - BitmapFont.GlyphHeight, label, Ink, Scale);
        }
        foreach (int n in lengths)
        {
            int x = X(n);
            canvas.Line(x, plotY + plotH, x, plotY + plotH + 5, Axis);
            string label = n % 1024 == 0 ? $"{n / 1024}K" : n.ToString(CultureInfo.InvariantCulture);
            canvas.Text(x - BitmapFont.Measure(label, Scale) / 2, plotY + plotH + 10, label, Ink, Scale);
        }
        canvas.Line(plotX, plotY, plotX, plotY + plotH, Axis);
        canvas.Line(plotX, plotY + plotH, plotX + plotW, plotY + plotH, Axis);

        for (int i = 0; i < implementations.Length; i++)
        {
            var color = Palette[i % Palette.Length];
            var points = results.Where(r => r.Implementation == implementations[i]).OrderBy(r => r.N).ToArray();
            DrawSeries(canvas, points.Select(r => (X(r.N), Y(r.EndToEndTops))).ToArray(), color, dash: 0);
            var kernel = points.Where(r => r.KernelTops is not null).Select(r => (X(r.N), Y(r.KernelTops!.Value))).ToArray();
            DrawSeries(canvas, kernel, color, dash: 6);
        }
    }

    private static void DrawSeries(Canvas canvas, (int X, int Y)[] points, Rgb color, int dash)
    {
        for (int p = 1; p < points.Length; p++)
            canvas.Line(points[p - 1].X, points[p - 1].Y, points[p].X, points[p].Y, color, thickness: 2, dash: dash);
        foreach (var (x, y) in points)
            canvas.Marker(x, y, dash > 0 ? 2 : 3, color);
    }

    /// <summary>The smallest "round" number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k) at or above <paramref name="value"/> (at least 1).</summary>
    public static double NiceCeiling(double value)
    {
        if (!(value > 1)) return 1;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (double step in new[] { 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0 })
        {
            if (step * magnitude >= value)
                return step * magnitude;
        }
        return 10 * magnitude;
    }
}
