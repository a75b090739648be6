using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Modules;

/// <summary>One pre-norm decoder layer: x += attn(norm(x)); x += mlp(norm(x)).</summary>
public sealed class DecoderLayer : nn.Module
{
    // Field names are the Hugging Face sub-module names.
    private readonly RmsNorm input_layernorm;
    private readonly DecoderAttention self_attn;
    private readonly RmsNorm post_attention_layernorm;
    private readonly SwiGluMlp mlp;

    /// <summary>Layer <paramref name="index"/> of <paramref name="config"/>.</summary>
    public DecoderLayer(ModelConfig config, int index, ScalarType dtype, Device device) : base(nameof(DecoderLayer))
    {
        ArgumentNullException.ThrowIfNull(config);
        Index = index;
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        self_attn = new DecoderAttention(config, dtype, device);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        mlp = new SwiGluMlp(config.HiddenSize, config.IntermediateSize, dtype, device);
        RegisterComponents();
    }

    /// <summary>The layer's index (its KV-cache layer in the backend).</summary>
    public int Index { get; }

    /// <summary>The attention block.</summary>
    public DecoderAttention Attention => self_attn;

    /// <summary>Adds the layer's attention and MLP outputs to the residual stream <paramref name="x"/> [T, hidden] in place.</summary>
    public void Forward(Tensor x, AttentionBackend backend, ForwardMeta meta)
    {
        using (var normed = input_layernorm.forward(x))
        using (var attended = self_attn.Forward(normed, Index, backend, meta))
            x.add_(attended);
        using (var normed = post_attention_layernorm.forward(x))
        using (var mixed = mlp.forward(normed))
            x.add_(mixed);
    }
}
