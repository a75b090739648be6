namespace SageAttn.Cli.Bench;

/// <summary>The benchmark's arithmetic: throughput and the accuracy metrics, in one place so tests can check them.</summary>
public static class BenchMath
{
    /// <summary>
    /// TOPS = 4·B·H·N²·D / time (two matrix products of 2·N²·D operations per head), halved for causal attention,
    /// which skips about half of the score matrix.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="milliseconds"/> is not positive.</exception>
    public static double Tops(int batch, int heads, int n, int headDim, bool causal, double milliseconds)
    {
        if (!(milliseconds > 0))
            throw new ArgumentOutOfRangeException(nameof(milliseconds), milliseconds, "time must be positive.");
        double operations = 4.0 * batch * heads * (double)n * n * headDim * (causal ? 0.5 : 1.0);
        return operations / (milliseconds * 1e-3) / 1e12;
    }

    /// <summary>Relative L1 error Σ|a − r| / Σ|r| (0 for identical inputs).</summary>
    /// <exception cref="ArgumentException">Lengths differ, are zero, or the reference is all zeros.</exception>
    public static double RelativeL1(ReadOnlySpan<double> actual, ReadOnlySpan<double> reference)
    {
        Check(actual, reference);
        double diff = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            diff += Math.Abs(actual[i] - reference[i]);
            norm += Math.Abs(reference[i]);
        }
        if (norm == 0)
            throw new ArgumentException("the reference is all zeros; relative L1 is undefined.", nameof(reference));
        return diff / norm;
    }

    /// <summary>Cosine similarity Σa·r / (‖a‖ ‖r‖): 1 for parallel vectors; NaN when either vector is zero.</summary>
    /// <exception cref="ArgumentException">Lengths differ or are zero.</exception>
    public static double Cosine(ReadOnlySpan<double> actual, ReadOnlySpan<double> reference)
    {
        Check(actual, reference);
        double dot = 0, aa = 0, rr = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            dot += actual[i] * reference[i];
            aa += actual[i] * actual[i];
            rr += reference[i] * reference[i];
        }
        return dot / Math.Sqrt(aa * rr);
    }

    /// <summary>Median of the samples (the mean of the two middle ones for an even count).</summary>
    /// <exception cref="ArgumentException">No samples.</exception>
    public static double Median(IReadOnlyCollection<double> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0)
            throw new ArgumentException("no samples.", nameof(samples));
        var sorted = samples.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static void Check(ReadOnlySpan<double> actual, ReadOnlySpan<double> reference)
    {
        if (actual.Length != reference.Length)
            throw new ArgumentException($"lengths differ: {actual.Length} vs {reference.Length}.", nameof(actual));
        if (actual.Length == 0)
            throw new ArgumentException("no elements.", nameof(actual));
    }
}
