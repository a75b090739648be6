namespace SageAttn.Cli;

/// <summary>The CSV file a benchmark command leaves in its <c>--out</c> folder.</summary>
internal static class CsvOutput
{
    /// <summary>Writes <paramref name="rows"/> (header first) to <paramref name="fileName"/> in <paramref name="outDir"/>, creating it; nothing without a folder.</summary>
    public static void Write(string? outDir, string fileName, IEnumerable<string> rows)
    {
        if (outDir is null)
            return;
        Directory.CreateDirectory(outDir);
        File.WriteAllLines(Path.Combine(outDir, fileName), rows);
    }
}
