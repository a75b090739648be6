using SageAttn.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>
/// An independent forward written from the Hugging Face modeling code (Qwen2, Qwen3, Ernie4_5): HF-named weights,
/// full causal attention without any cache, RoPE as HF applies it. The tests compare the engine's model with it in
/// float64; batched and differentiable, it also trains the tiny models of <see cref="PeriodicTask"/> (float32). It
/// shares no code with src/Models.
/// </summary>
internal static class HfReference
{
    /// <summary>Logits [N, vocab] (float64) of every position of <paramref name="tokens"/>.</summary>
    /// <param name="interleavedRope">ERNIE's pairing (2i, 2i+1) instead of rotate_half's (i, i + D/2).</param>
    /// <param name="qkNorm">Apply Qwen3's q_norm / k_norm (tests turn it off to show it matters).</param>
    public static Tensor Logits(IReadOnlyDictionary<string, Tensor> weights, ModelConfig config, int[] tokens, bool interleavedRope, bool qkNorm)
    {
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(tokens.Select(t => (long)t).ToArray(), [1, tokens.Length]);
        return Forward(weights, config, ids, interleavedRope, qkNorm, ScalarType.Float64)[0].MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Logits [B, N, vocab] in <paramref name="dtype"/> of a batch of equal-length sequences <paramref name="ids"/>
    /// [B, N] (int64). Differentiable: weights that require grad (in <paramref name="dtype"/>) get gradients, so the
    /// tests can train a tiny model through this forward (float32 for speed).
    /// </summary>
    public static Tensor Forward(IReadOnlyDictionary<string, Tensor> weights, ModelConfig config, Tensor ids, bool interleavedRope, bool qkNorm, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        Tensor W(string name) => weights[name].to(dtype);
        long b = ids.shape[0], n = ids.shape[1];
        int h = config.NumAttentionHeads, hkv = config.NumKeyValueHeads, d = config.HeadDim;
        var x = W("model.embed_tokens.weight").index_select(0, ids.reshape(-1)).view(b, n, -1);
        var (cos, sin) = Rope(config, (int)n, interleavedRope, dtype);
        var mask = torch.ones(n, n, ScalarType.Bool).triu(1);
        for (int l = 0; l < config.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var hs = Rms(x, W(p + "input_layernorm.weight"), config.RmsNormEps);
            Tensor Project(string name) => nn.functional.linear(hs, W(p + $"self_attn.{name}.weight"),
                weights.ContainsKey(p + $"self_attn.{name}.bias") ? W(p + $"self_attn.{name}.bias") : null);
            var q = Project("q_proj").view(b, n, h, d);
            var k = Project("k_proj").view(b, n, hkv, d);
            var v = Project("v_proj").view(b, n, hkv, d);
            if (qkNorm)
            {
                q = Rms(q, W(p + "self_attn.q_norm.weight"), config.RmsNormEps);
                k = Rms(k, W(p + "self_attn.k_norm.weight"), config.RmsNormEps);
            }

            q = q * cos + RotateHalf(q, interleavedRope) * sin;
            k = k * cos + RotateHalf(k, interleavedRope) * sin;
            k = k.repeat_interleave(h / hkv, 2);
            v = v.repeat_interleave(h / hkv, 2);
            var scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / Math.Sqrt(d);
            var probs = scores.masked_fill(mask, double.NegativeInfinity).softmax(-1);
            var attended = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, n, h * d);
            x = x + nn.functional.linear(attended, W(p + "self_attn.o_proj.weight"));
            var h2 = Rms(x, W(p + "post_attention_layernorm.weight"), config.RmsNormEps);
            var gate = nn.functional.linear(h2, W(p + "mlp.gate_proj.weight"));
            var up = nn.functional.linear(h2, W(p + "mlp.up_proj.weight"));
            x = x + nn.functional.linear(nn.functional.silu(gate) * up, W(p + "mlp.down_proj.weight"));
        }

        var head = config.TieWordEmbeddings ? W("model.embed_tokens.weight") : W("lm_head.weight");
        return nn.functional.linear(Rms(x, W("model.norm.weight"), config.RmsNormEps), head).MoveToOuterDisposeScope();
    }

    private static Tensor Rms(Tensor x, Tensor weight, double eps) => weight * (x * (x.square().mean([-1], keepdim: true) + eps).rsqrt());

    /// <summary>
    /// cos and sin [N, 1, D] as HF builds them: inv_freq_i = θ^(−2i/D); neox concatenates (freqs, freqs), ERNIE
    /// repeats each frequency twice in place (repeat_interleave). Computed in float64, returned in <paramref name="dtype"/>.
    /// </summary>
    private static (Tensor Cos, Tensor Sin) Rope(ModelConfig config, int n, bool interleaved, ScalarType dtype)
    {
        int d = config.HeadDim;
        var inverse = torch.pow(config.RopeTheta, -torch.arange(0, d, 2, ScalarType.Float64) / d);
        var freqs = torch.outer(torch.arange(n, ScalarType.Float64), inverse);
        var full = interleaved ? freqs.repeat_interleave(2, -1) : torch.cat([freqs, freqs], -1);
        return (full.cos().unsqueeze(1).to(dtype), full.sin().unsqueeze(1).to(dtype));
    }

    /// <summary>neox: [x1, x2] → [−x2, x1] over halves; interleaved: (x_even, x_odd) → (−x_odd, x_even) per pair.</summary>
    private static Tensor RotateHalf(Tensor x, bool interleaved)
    {
        long d = x.shape[^1];
        if (!interleaved)
            return torch.cat([-x.narrow(-1, d / 2, d / 2), x.narrow(-1, 0, d / 2)], -1);
        var even = x.slice(-1, 0, d, 2);
        var odd = x.slice(-1, 1, d, 2);
        return torch.stack([-odd, even], -1).flatten(-2);
    }
}
