namespace SageAttn.Models;

/// <summary>
/// Built-in configurations with the real shapes of the target models, for runs with seeded random weights (no
/// weights can be downloaded here), and tiny ones for tests.
/// </summary>
/// <remarks>
/// Layers, hidden size, heads, KV heads, head_dim and rope_theta are those of shared/notes/backend-design.md (read
/// from the models' public config.json files). Intermediate sizes, vocabulary sizes, rms_norm_eps,
/// max_position_embeddings and tie_word_embeddings are written from memory of the same public config.json files
/// (Qwen/Qwen3-8B, Qwen/Qwen3-0.6B, Qwen/Qwen2.5-7B, Qwen/Qwen2.5-0.5B, baidu/ERNIE-4.5-0.3B-PT) and were not
/// re-checked against the files here: pass a real folder to <see cref="ModelConfig.FromFile"/> when exactness matters.
/// </remarks>
public static class ModelPresets
{
    /// <summary>Qwen3-8B: 36 layers, hidden 4096, 32 heads, 8 KV heads, head_dim 128.</summary>
    public static ModelConfig Qwen3_8B { get; } = new()
    {
        Family = ModelFamily.Qwen3, HiddenSize = 4096, IntermediateSize = 12288, NumHiddenLayers = 36,
        NumAttentionHeads = 32, NumKeyValueHeads = 8, HeadDim = 128, VocabSize = 151936, RmsNormEps = 1e-6,
        RopeTheta = 1e6, MaxPositionEmbeddings = 40960, TieWordEmbeddings = false,
    };

    /// <summary>Qwen3-0.6B: 28 layers, hidden 1024, 16 heads, 8 KV heads, head_dim 128 (H·D = 2048 ≠ hidden).</summary>
    public static ModelConfig Qwen3_0_6B { get; } = new()
    {
        Family = ModelFamily.Qwen3, HiddenSize = 1024, IntermediateSize = 3072, NumHiddenLayers = 28,
        NumAttentionHeads = 16, NumKeyValueHeads = 8, HeadDim = 128, VocabSize = 151936, RmsNormEps = 1e-6,
        RopeTheta = 1e6, MaxPositionEmbeddings = 40960, TieWordEmbeddings = true,
    };

    /// <summary>Qwen2.5-7B: 28 layers, hidden 3584, 28 heads, 4 KV heads (GQA 7), head_dim 128, q/k/v bias.</summary>
    public static ModelConfig Qwen25_7B { get; } = new()
    {
        Family = ModelFamily.Qwen2, HiddenSize = 3584, IntermediateSize = 18944, NumHiddenLayers = 28,
        NumAttentionHeads = 28, NumKeyValueHeads = 4, HeadDim = 128, VocabSize = 152064, RmsNormEps = 1e-6,
        RopeTheta = 1e6, MaxPositionEmbeddings = 131072, TieWordEmbeddings = false, AttentionBias = true,
    };

    /// <summary>Qwen2.5-0.5B: 24 layers, hidden 896, 14 heads, 2 KV heads (GQA 7), head_dim 64, q/k/v bias.</summary>
    public static ModelConfig Qwen25_0_5B { get; } = new()
    {
        Family = ModelFamily.Qwen2, HiddenSize = 896, IntermediateSize = 4864, NumHiddenLayers = 24,
        NumAttentionHeads = 14, NumKeyValueHeads = 2, HeadDim = 64, VocabSize = 151936, RmsNormEps = 1e-6,
        RopeTheta = 1e6, MaxPositionEmbeddings = 32768, TieWordEmbeddings = true, AttentionBias = true,
    };

    /// <summary>ERNIE-4.5-0.3B: 18 layers, hidden 1024, 16 heads, 2 KV heads, head_dim 128 (H·D = 2048 ≠ hidden), interleaved RoPE.</summary>
    public static ModelConfig Ernie45_0_3B { get; } = new()
    {
        Family = ModelFamily.Ernie45, HiddenSize = 1024, IntermediateSize = 3072, NumHiddenLayers = 18,
        NumAttentionHeads = 16, NumKeyValueHeads = 2, HeadDim = 128, VocabSize = 103424, RmsNormEps = 1e-5,
        RopeTheta = 500000, MaxPositionEmbeddings = 131072, TieWordEmbeddings = true, InterleavedRope = true,
    };

    /// <summary>
    /// A tiny model of <paramref name="family"/> for tests and CPU runs: 2 layers, hidden 64, 4 heads, 2 KV heads,
    /// head_dim 64 (so H·D = 256 ≠ hidden, like ERNIE-0.3B and Qwen3-0.6B), vocabulary 256.
    /// </summary>
    /// <remarks>head_dim 64, as every real preset's 64 or 128: the SAGE backend decodes through the paged decode kernel as
    /// it does for them (other head dims take the dense per-request fallback, ~0.5 s per call on the CPU accelerator).</remarks>
    public static ModelConfig Tiny(ModelFamily family) => new()
    {
        Family = family, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4,
        NumKeyValueHeads = 2, HeadDim = 64, VocabSize = 256, RmsNormEps = 1e-6,
        RopeTheta = family == ModelFamily.Ernie45 ? 500000 : 1e6, MaxPositionEmbeddings = 1024,
        TieWordEmbeddings = family != ModelFamily.Qwen3, AttentionBias = family == ModelFamily.Qwen2,
        InterleavedRope = family == ModelFamily.Ernie45,
    };

    /// <summary>The preset names <see cref="Get"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["qwen3-8b", "qwen3-0.6b", "qwen2.5-7b", "qwen2.5-0.5b", "ernie-4.5-0.3b", "tiny-qwen2.5", "tiny-qwen3", "tiny-ernie-4.5"];

    /// <summary>The preset called <paramref name="name"/> (case-insensitive), one of <see cref="Names"/>.</summary>
    /// <exception cref="ArgumentException">Unknown name (ParamName "name").</exception>
    public static ModelConfig Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.ToLowerInvariant() switch
        {
            "qwen3-8b" => Qwen3_8B,
            "qwen3-0.6b" => Qwen3_0_6B,
            "qwen2.5-7b" => Qwen25_7B,
            "qwen2.5-0.5b" => Qwen25_0_5B,
            "ernie-4.5-0.3b" => Ernie45_0_3B,
            "tiny-qwen2.5" => Tiny(ModelFamily.Qwen2),
            "tiny-qwen3" => Tiny(ModelFamily.Qwen3),
            "tiny-ernie-4.5" => Tiny(ModelFamily.Ernie45),
            _ => throw new ArgumentException($"unknown model '{name}'; known: {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}
