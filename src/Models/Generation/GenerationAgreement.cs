namespace SageAttn.Models.Generation;

/// <summary>
/// How closely two runs of the same batch (e.g. SAGE vs SDPA attention) agree: cosine similarity of their logits
/// and whether they chose the same greedy tokens.
/// </summary>
/// <param name="PrefillCosine">Lowest cosine over requests of the prefill's last-token logits.</param>
/// <param name="DecodeCosine">Lowest cosine over the decode steps both runs reached with the same history (NaN if none kept).</param>
/// <param name="IdenticalSteps">Per request, decode steps before the first differing token (all steps when none differs).</param>
/// <param name="Steps">Decode steps per request.</param>
public sealed record GenerationAgreement(double PrefillCosine, double DecodeCosine, int[] IdenticalSteps, int Steps)
{
    /// <summary>True when every request chose the same token at every step (and after the prompt).</summary>
    public bool TokensIdentical => IdenticalSteps.All(s => s == Steps);

    /// <summary>Compares run <paramref name="a"/> with run <paramref name="b"/> of the same prompts.</summary>
    /// <exception cref="ArgumentException">The runs have different batch sizes or step counts, or the prefill logits were not kept.</exception>
    public static GenerationAgreement Compare(PrefillResult prefillA, DecodeResult a, PrefillResult prefillB, DecodeResult b)
    {
        ArgumentNullException.ThrowIfNull(prefillA);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(prefillB);
        ArgumentNullException.ThrowIfNull(b);
        if (prefillA.Logits is null || prefillB.Logits is null)
            throw new ArgumentException("both prefills must keep their logits.", nameof(prefillA));
        if (a.Tokens.Length != b.Tokens.Length || a.Steps != b.Steps || prefillA.Logits.Length != prefillB.Logits.Length)
            throw new ArgumentException($"the runs differ in shape: {a.Tokens.Length} vs {b.Tokens.Length} requests, {a.Steps} vs {b.Steps} steps.", nameof(b));
        int batch = a.Tokens.Length;
        double prefill = Enumerable.Range(0, batch).Min(r => Cosine(prefillA.Logits[r], prefillB.Logits[r]));
        var identical = new int[batch];
        double decode = double.NaN;
        for (int r = 0; r < batch; r++)
        {
            // Step s's logits are comparable while both runs fed the same tokens before it: the prefill's choice, then steps < s.
            bool sameHistory = prefillA.NextTokens[r] == prefillB.NextTokens[r];
            int s = 0;
            for (; s < a.Steps; s++)
            {
                if (!sameHistory)
                    break;
                if (a.Logits is not null && b.Logits is not null)
                {
                    double c = Cosine(a.Logits[s][r], b.Logits[s][r]);
                    decode = double.IsNaN(decode) ? c : Math.Min(decode, c);
                }

                if (a.Tokens[r][s] != b.Tokens[r][s])
                    break;
            }

            identical[r] = sameHistory ? s : 0;
        }

        return new GenerationAgreement(prefill, decode, identical, a.Steps);
    }

    /// <summary>Cosine similarity of two vectors, accumulated in double.</summary>
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
