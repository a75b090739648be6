using System.Diagnostics;
using SageAttn.Backend;
using SageAttn.Backend.Engine;
using SageAttn.Kernels.Attention;
using SageAttn.Models;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>
/// Issue 5's model acceptance taken literally, on tiny models trained here (CPU: SAGE runs on the ILGPU CPU
/// accelerator): 16 free-running greedy decode steps with the SAGE_ATTN backend give exactly SDPA's tokens, and every
/// logits vector on the way (the prefill's last position and each step) stays within cosine 0.999 of SDPA's.
/// </summary>
/// <remarks>
/// <para>Random weights cannot carry this check (see <see cref="SageVsSdpaModelTests"/>: their next-token
/// distributions are nearly flat, so near-ties flip). A trained model predicts decisively, as a real LM does on most
/// tokens: each family's tiny preset (shapes unchanged) is trained in float32 (200 Adam steps) on <see cref="PeriodicTask"/>
/// (a random pattern repeated, so the next token is a copy through attention), written in float16 as a Hugging Face
/// folder and loaded through <see cref="HfCheckpoint"/>. SDPA's tokens must follow the task's rule at every step —
/// proof that the model learned the task, so the identity is not luck — and SAGE's must equal them, without teacher
/// forcing. Margins seen (2 cores): SDPA's top-2 logit gap ≥ 6.4, |SAGE − SDPA| ≤ 0.07 per logit.</para>
/// <para>Cost (2 cores, the three families in parallel): 14–28 s of training and 6–16 s of SAGE per family (prefill
/// through the varlen kernel, decode through the paged decode kernel on the CPU accelerator).</para>
/// </remarks>
public sealed class TrainedModelGreedyTests
{
    private const int Steps = 16;

    /// <summary>Training sequences are as long as the longest prompt plus the generated tokens (positions seen in training).</summary>
    private const int TrainLength = 48;

    private const int TrainSteps = 200;

    /// <summary>2 periods + 5 and 3 periods + 6: no multiple of the period or of the KV block size (64).</summary>
    private static readonly int[] PromptLengths = [21, 30];

    [Theory]
    [InlineData(ModelFamily.Qwen2)]
    [InlineData(ModelFamily.Qwen3)]
    [InlineData(ModelFamily.Ernie45)]
    public void SageGreedyTokensEqualSdpaForSixteenFreeRunningSteps(ModelFamily family)
    {
        Assert.True(PromptLengths.Max() + Steps <= TrainLength);
        var output = TestContext.Current.TestOutputHelper;
        var config = ModelPresets.Tiny(family);
        long start = Stopwatch.GetTimestamp();
        var (weights, log) = PeriodicTask.Train(config, seed: 500 + (int)family, TrainLength, TrainSteps);
        output?.WriteLine($"{family}: trained {log.Steps} steps in {log.Elapsed.TotalSeconds:F1} s, loss {log.FirstLoss:F3} -> {log.FinalLoss:F5}");
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 1, ScalarType.Float16);
        foreach (var w in weights.Values)
            w.Dispose();
        using var model = HfCheckpoint.Open(dir, ScalarType.Float16, torch.CPU);

        // Fresh patterns (a seed other than training's), two requests in one batch.
        var random = new Random(900 + (int)family);
        int[][] prompts = [.. PromptLengths.Select(n => PeriodicTask.Sequence(random, n))];
        var sage = new SageAttentionSettings { Variant = AttentionVariant.QkInt8PvFp16 };

        long sdpaStart = Stopwatch.GetTimestamp();
        var (sdpaPrefill, sdpaDecode) = ModelTestKit.Generate(model, SdpaAttentionBackend.BackendName, prompts, Steps);
        long sageStart = Stopwatch.GetTimestamp();
        var (sagePrefill, sageDecode) = ModelTestKit.Generate(model, SageAttentionBackend.BackendName, prompts, Steps, sage);
        output?.WriteLine($"{family}: SDPA {Stopwatch.GetElapsedTime(sdpaStart, sageStart).TotalSeconds:F1} s, " +
            $"SAGE {Stopwatch.GetElapsedTime(sageStart).TotalSeconds:F1} s (prefill {sagePrefill.Milliseconds / 1000:F1} s, decode {sageDecode.Milliseconds / 1000:F1} s)");

        double minGap = double.PositiveInfinity, maxDiff = 0, minCosine = 1;
        for (int r = 0; r < prompts.Length; r++)
        {
            var history = prompts[r].ToList();
            // Choice 0 is the prefill's, choices 1..16 the decode steps'.
            int[] sdpaTokens = [sdpaPrefill.NextTokens[r], .. sdpaDecode.Tokens[r]];
            int[] sageTokens = [sagePrefill.NextTokens[r], .. sageDecode.Tokens[r]];
            string tokens = $"SDPA [{string.Join(", ", sdpaTokens)}], SAGE [{string.Join(", ", sageTokens)}]";
            for (int s = 0; s <= Steps; s++)
            {
                var expected = s == 0 ? sdpaPrefill.Logits![r] : sdpaDecode.Logits![s - 1][r];
                var actual = s == 0 ? sagePrefill.Logits![r] : sageDecode.Logits![s - 1][r];
                var top = expected.OrderDescending().Take(2).ToArray();
                double gap = top[0] - top[1];
                double diff = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
                double cosine = ModelTestKit.Cosine(actual, expected);
                string where = $"{family} request {r} ({prompts[r].Length}-token prompt) {(s == 0 ? "prefill" : $"decode step {s}")}";
                int rule = PeriodicTask.Next(history);
                Assert.True(sdpaTokens[s] == rule,
                    $"{where}: SDPA chose {sdpaTokens[s]} but the task's rule gives {rule} (top-2 gap {gap:F3}): the model did not learn the task. {tokens}");
                // Up to here both runs saw the same history, so these logits are comparable.
                Assert.True(cosine >= 0.999, $"{where}: SAGE's logits have cosine {cosine:F6} to SDPA's (max |diff| {diff:F4}). {tokens}");
                Assert.True(sageTokens[s] == sdpaTokens[s],
                    $"{where}: SAGE chose {sageTokens[s]}, SDPA {sdpaTokens[s]} (SDPA's top-2 gap {gap:F3}, max |SAGE − SDPA| {diff:F4}). {tokens}");
                minGap = Math.Min(minGap, gap);
                maxDiff = Math.Max(maxDiff, diff);
                minCosine = Math.Min(minCosine, cosine);
                history.Add(sdpaTokens[s]);
            }
        }

        output?.WriteLine($"{family}: SDPA's top-2 logit gap ≥ {minGap:F3}, |SAGE − SDPA| ≤ {maxDiff:F4}, cosine ≥ {minCosine:F6}; " +
            $"{Stopwatch.GetElapsedTime(start).TotalSeconds:F1} s in all");
        // Identical logits would mean SAGE never ran its own kernels, and the identity would prove nothing.
        Assert.True(maxDiff > 0, $"{family}: SAGE's logits equal SDPA's bit for bit");
    }
}
