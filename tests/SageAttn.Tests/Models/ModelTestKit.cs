using SageAttn.Backend;
using SageAttn.Backend.Engine;
using SageAttn.Models;
using SageAttn.Models.Generation;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>Shared setup of the model tests: HF-named random weights, checkpoints on disk, engine runs.</summary>
internal static class ModelTestKit
{
    /// <summary>
    /// Random weights of <paramref name="config"/> under Hugging Face names (float32, CPU), built here from the HF
    /// layout rather than from the model's own parameters: matrices N(0, 1/in), norm gains 1 + N(0, 0.1²), biases N(0, 0.1²).
    /// </summary>
    public static Dictionary<string, Tensor> HfWeights(ModelConfig config, long seed)
    {
        var generator = new torch.Generator((ulong)seed);
        Tensor Matrix(long rows, long columns) => torch.randn([rows, columns], generator: generator) / Math.Sqrt(columns);
        Tensor Gain(long size) => 1 + 0.1 * torch.randn([size], generator: generator);
        Tensor Bias(long size) => 0.1 * torch.randn([size], generator: generator);
        int hidden = config.HiddenSize, q = config.NumAttentionHeads * config.HeadDim, kv = config.NumKeyValueHeads * config.HeadDim;
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["model.embed_tokens.weight"] = Matrix(config.VocabSize, hidden),
        };
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            weights[p + "input_layernorm.weight"] = Gain(hidden);
            weights[p + "self_attn.q_proj.weight"] = Matrix(q, hidden);
            weights[p + "self_attn.k_proj.weight"] = Matrix(kv, hidden);
            weights[p + "self_attn.v_proj.weight"] = Matrix(kv, hidden);
            if (config.AttentionBias)
            {
                weights[p + "self_attn.q_proj.bias"] = Bias(q);
                weights[p + "self_attn.k_proj.bias"] = Bias(kv);
                weights[p + "self_attn.v_proj.bias"] = Bias(kv);
            }

            if (config.QkNorm)
            {
                weights[p + "self_attn.q_norm.weight"] = Gain(config.HeadDim);
                weights[p + "self_attn.k_norm.weight"] = Gain(config.HeadDim);
            }

            weights[p + "self_attn.o_proj.weight"] = Matrix(hidden, q);
            weights[p + "post_attention_layernorm.weight"] = Gain(hidden);
            weights[p + "mlp.gate_proj.weight"] = Matrix(config.IntermediateSize, hidden);
            weights[p + "mlp.up_proj.weight"] = Matrix(config.IntermediateSize, hidden);
            weights[p + "mlp.down_proj.weight"] = Matrix(hidden, config.IntermediateSize);
        }

        weights["model.norm.weight"] = Gain(hidden);
        if (!config.TieWordEmbeddings)
            weights["lm_head.weight"] = Matrix(config.VocabSize, hidden);
        return weights;
    }

    /// <summary>
    /// Writes <paramref name="weights"/> as a sharded HF checkpoint: config.json, one file per group of tensors
    /// (round robin over <paramref name="shards"/> files, so a layer's q/k/v land in different files) and the index.
    /// </summary>
    public static void WriteCheckpoint(string directory, ModelConfig config, IReadOnlyDictionary<string, Tensor> weights, int shards, ScalarType dtype)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJson());
        var map = new List<string>();
        var names = weights.Keys.ToArray();
        for (int s = 0; s < shards; s++)
        {
            string file = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var content = names.Where((_, i) => i % shards == s).ToDictionary(n => n, n => weights[n].to(dtype));
            SafeTensorsFile.Write(Path.Combine(directory, file), content);
            map.AddRange(content.Keys.Select(n => $"\"{n}\": \"{file}\""));
            foreach (var t in content.Values)
                t.Dispose();
        }

        File.WriteAllText(Path.Combine(directory, "model.safetensors.index.json"),
            "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {" + string.Join(", ", map) + "}}");
    }

    /// <summary>A temporary folder for one test.</summary>
    public static string TempDirectory() => Directory.CreateTempSubdirectory("sageattn-models").FullName;

    /// <summary>Random prompts of the given lengths.</summary>
    public static int[][] Prompts(int vocab, int seed, params int[] lengths)
    {
        var random = new Random(seed);
        return lengths.Select(n => Enumerable.Range(0, n).Select(_ => random.Next(vocab)).ToArray()).ToArray();
    }

    /// <summary>
    /// Prefill then decode <paramref name="steps"/> tokens with backend <paramref name="backendName"/>, keeping all
    /// logits; optionally teacher-forced with <paramref name="forcedInputs"/>.
    /// </summary>
    public static (PrefillResult Prefill, DecodeResult Decode) Generate(DecoderModel model, string backendName, int[][] prompts, int steps,
        SageAttentionSettings? sage = null, int[][]? forcedInputs = null)
    {
        int maxLength = prompts.Max(p => p.Length) + steps;
        var backend = AttentionBackendRegistry.Create(backendName, model.BackendConfig(maxPositions: model.Config.MaxPositionEmbeddings, sage: sage));
        using var engine = new GenerationEngine(model, backend, prompts.Length, maxLength);
        var prefill = engine.Prefill(prompts);
        var decode = engine.Decode(steps, keepLogits: true, forcedInputs);
        return (prefill, decode);
    }

    /// <summary>
    /// Checks a teacher-forced <paramref name="test"/> run against the <paramref name="reference"/> run it replayed:
    /// every logits vector within <paramref name="minCosine"/>, and the same greedy token wherever the reference's
    /// top-2 gap exceeds <paramref name="decisiveGap"/> standard deviations of its logits. Returns how many choices
    /// were decisive, and how many agreed in all.
    /// </summary>
    public static (int Decisive, int Same, int Total) AssertFollows(PrefillResult referencePrefill, DecodeResult reference,
        PrefillResult testPrefill, DecodeResult test, double minCosine, double decisiveGap, string label)
    {
        int decisive = 0, same = 0, total = 0;
        void Check(float[] expected, float[] actual, int expectedToken, int actualToken, string where)
        {
            double cosine = Cosine(actual, expected);
            Assert.True(cosine >= minCosine, $"{label} {where}: logits cosine {cosine:F6}");
            var sorted = expected.OrderDescending().ToArray();
            double mean = expected.Average(), std = Math.Sqrt(expected.Select(x => (x - mean) * (x - mean)).Average());
            double gap = (sorted[0] - sorted[1]) / std;
            total++;
            same += expectedToken == actualToken ? 1 : 0;
            if (gap > decisiveGap)
            {
                decisive++;
                Assert.True(expectedToken == actualToken, $"{label} {where}: token {actualToken} instead of {expectedToken} although the reference's top-2 gap is {gap:F3} std");
            }
        }

        for (int r = 0; r < reference.Tokens.Length; r++)
        {
            Check(referencePrefill.Logits![r], testPrefill.Logits![r], referencePrefill.NextTokens[r], testPrefill.NextTokens[r], $"request {r} prefill");
            for (int s = 0; s < reference.Steps; s++)
                Check(reference.Logits![s][r], test.Logits![s][r], reference.Tokens[r][s], test.Tokens[r][s], $"request {r} step {s}");
        }

        return (decisive, same, total);
    }

    /// <summary>Cosine similarity of two float vectors, accumulated in double.</summary>
    public static double Cosine(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double dot = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.True(float.IsFinite(a[i]) && float.IsFinite(b[i]), $"element {i}: {a[i]} vs {b[i]}");
            dot += (double)a[i] * b[i];
            aa += (double)a[i] * a[i];
            bb += (double)b[i] * b[i];
        }

        return dot / Math.Sqrt(aa * bb);
    }

    /// <summary>True when both tensors have the same shape, dtype and values.</summary>
    public static bool Identical(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype)
            return false;
        using var same = a.eq(b).all();
        return same.item<bool>();
    }

    /// <summary>The float32 row <paramref name="row"/> of a float64 [N, V] tensor.</summary>
    public static float[] Row(Tensor logits, int row)
    {
        using var r = logits[row].to(ScalarType.Float32).clone();
        return r.data<float>().ToArray();
    }
}
