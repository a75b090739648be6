namespace SageAttn.Models;

/// <summary>
/// The decoder families this project runs. They share one block structure (pre-norm attention and SwiGLU MLP)
/// and differ only in the attention details listed per member.
/// </summary>
public enum ModelFamily
{
    /// <summary>Qwen2 / Qwen2.5 (<c>model_type</c> "qwen2"): bias on the q, k and v projections, neox RoPE.</summary>
    Qwen2,

    /// <summary>Qwen3 (<c>model_type</c> "qwen3"): per-head RMSNorm on q and k before RoPE, no bias, neox RoPE.</summary>
    Qwen3,

    /// <summary>ERNIE-4.5 dense (<c>model_type</c> "ernie4_5"): no bias, interleaved (GPT-J style) RoPE.</summary>
    Ernie45,
}
