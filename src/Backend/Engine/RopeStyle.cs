namespace SageAttn.Backend.Engine;

/// <summary>Which channels of a head rotary position embedding (RoPE) pairs up and rotates together.</summary>
/// <remarks>
/// Channel pair i (0 ≤ i &lt; D/2) is rotated by the angle position · θ^(−2i/D) in both styles; they differ only in
/// where the two channels of pair i sit. Checkpoints are trained with one of them, so picking the wrong one does
/// not fail loudly: it silently ruins the model.
/// </remarks>
public enum RopeStyle
{
    /// <summary>
    /// Halves: pair i is channels (i, i + D/2); [x1, x2] → [x1·cos − x2·sin, x2·cos + x1·sin]
    /// (GPT-NeoX, Hugging Face Llama / Qwen2.5 / Qwen3: <c>rotate_half</c>).
    /// </summary>
    Neox,

    /// <summary>Adjacent pairs: pair i is channels (2i, 2i + 1) (GPT-J, ERNIE-4.5: FastDeploy's non-neox style).</summary>
    Interleaved,
}
