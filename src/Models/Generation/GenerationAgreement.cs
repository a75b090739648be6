namespace SageAttn.Models.Generation;

/// <summary>
/// How closely a test run (e.g. SAGE attention) follows a reference run (SDPA) of the same prompts, step by step on
/// the same history: the test run's decode is teacher-forced with the reference's tokens
/// (<see cref="ReferenceInputs"/>), so every step's logits are comparable even after a near-tie went the other way.
/// </summary>
/// <param name="PrefillCosine">Lowest cosine over requests of the prefill's last-token logits.</param>
/// <param name="DecodeCosine">Lowest cosine over steps and requests of the decode logits (NaN when the decode kept none).</param>
/// <param name="Decisions">Greedy choices compared: per request, the prefill's and every decode step's.</param>
/// <param name="SameDecisions">Of those, the ones where both runs chose the same token.</param>
public sealed record GenerationAgreement(double PrefillCosine, double DecodeCosine, int Decisions, int SameDecisions)
{
    /// <summary>True when every greedy choice agreed.</summary>
    public bool TokensIdentical => SameDecisions == Decisions;

    /// <summary>
    /// The decode inputs that replay the reference's history: per request, the prefill's choice then every decode
    /// choice but the last (pass as <see cref="GenerationEngine.Decode"/>'s forcedInputs).
    /// </summary>
    public static int[][] ReferenceInputs(PrefillResult prefill, DecodeResult decode)
    {
        ArgumentNullException.ThrowIfNull(prefill);
        ArgumentNullException.ThrowIfNull(decode);
        return prefill.NextTokens.Select((first, r) => (int[])[first, .. decode.Tokens[r].Take(decode.Steps - 1)]).ToArray();
    }

    /// <summary>Compares a teacher-forced <paramref name="test"/> run with the <paramref name="reference"/> run it replayed.</summary>
    /// <exception cref="ArgumentException">The runs differ in batch size or steps, or a prefill did not keep its logits.</exception>
    public static GenerationAgreement Compare(PrefillResult referencePrefill, DecodeResult reference, PrefillResult testPrefill, DecodeResult test)
    {
        ArgumentNullException.ThrowIfNull(referencePrefill);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(testPrefill);
        ArgumentNullException.ThrowIfNull(test);
        if (referencePrefill.Logits is null || testPrefill.Logits is null)
            throw new ArgumentException("both prefills must keep their logits.", nameof(testPrefill));
        int batch = reference.Tokens.Length;
        if (test.Tokens.Length != batch || test.Steps != reference.Steps || testPrefill.Logits.Length != batch || referencePrefill.Logits.Length != batch)
            throw new ArgumentException($"the runs differ in shape: {batch} vs {test.Tokens.Length} requests, {reference.Steps} vs {test.Steps} steps.", nameof(test));
        double prefill = Enumerable.Range(0, batch).Min(r => Cosine(referencePrefill.Logits[r], testPrefill.Logits[r]));
        double decode = reference.Logits is null || test.Logits is null ? double.NaN
            : Enumerable.Range(0, reference.Steps).SelectMany(s => Enumerable.Range(0, batch).Select(r => Cosine(reference.Logits[s][r], test.Logits[s][r]))).Min();
        int same = Enumerable.Range(0, batch).Sum(r =>
            (referencePrefill.NextTokens[r] == testPrefill.NextTokens[r] ? 1 : 0) + reference.Tokens[r].Zip(test.Tokens[r]).Count(t => t.First == t.Second));
        return new GenerationAgreement(prefill, decode, batch * (reference.Steps + 1), same);
    }

    /// <summary>Cosine similarity of two vectors, accumulated in double.</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public static double Cosine(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        if (x.Length != y.Length)
            throw new ArgumentException($"lengths differ: {x.Length} vs {y.Length}.", nameof(y));
        double dot = 0, xx = 0, yy = 0;
        for (int i = 0; i < x.Length; i++)
        {
            dot += (double)x[i] * y[i];
            xx += (double)x[i] * x[i];
            yy += (double)y[i] * y[i];
        }

        return dot / Math.Sqrt(xx * yy);
    }
}
