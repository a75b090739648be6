namespace SageAttn.Models.Weights;

/// <summary>
/// How the model's state-dict names map to Hugging Face checkpoint names. Everything but the LM head carries HF's
/// "model." prefix; the fused <c>self_attn.qkv_proj</c> is HF's q_proj, k_proj and v_proj stacked along the output
/// dimension (rows), in that order. ERNIE-4.5's PyTorch checkpoints (baidu/ERNIE-4.5-*-PT, transformers' Ernie4_5)
/// use the same names as Qwen's; checkpoints that already store a fused <c>qkv_proj</c> are read as they are.
/// </summary>
public static class HfWeightNames
{
    private const string FusedQkv = ".self_attn.qkv_proj.";

    /// <summary>The HF projections stacked into the fused qkv, in stacking order.</summary>
    public static IReadOnlyList<string> QkvParts { get; } = ["q_proj", "k_proj", "v_proj"];

    /// <summary>True when state-dict entry <paramref name="name"/> is a fused qkv weight or bias.</summary>
    public static bool IsFusedQkv(string name) => name.Contains(FusedQkv, StringComparison.Ordinal);

    /// <summary>The checkpoint name of state-dict entry <paramref name="name"/> stored as one tensor ("model." + name, or lm_head.*).</summary>
    public static string Direct(string name) =>
        name.StartsWith("lm_head.", StringComparison.Ordinal) ? name : "model." + name;

    /// <summary>
    /// For a fused qkv entry, the HF names of its q, k and v parts (e.g. <c>layers.3.self_attn.qkv_proj.bias</c> →
    /// <c>model.layers.3.self_attn.q_proj.bias</c>, …k_proj.bias, …v_proj.bias).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a fused qkv entry.</exception>
    public static IReadOnlyList<string> SplitQkv(string name)
    {
        if (!IsFusedQkv(name))
            throw new ArgumentException($"'{name}' is not a fused qkv parameter.", nameof(name));
        return QkvParts.Select(part => Direct(name.Replace(FusedQkv, $".self_attn.{part}.", StringComparison.Ordinal))).ToArray();
    }

    /// <summary>Rows of the q, k and v parts of the fused qkv of <paramref name="config"/>: H·D, Hkv·D, Hkv·D.</summary>
    public static long[] QkvRows(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long q = (long)config.NumAttentionHeads * config.HeadDim, kv = (long)config.NumKeyValueHeads * config.HeadDim;
        return [q, kv, kv];
    }
}
