using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Modules;

/// <summary>
/// The attention block of a decoder layer: one fused projection to packed qkv [T, (H + 2·Hkv)·D], Qwen3's per-head
/// q/k RMSNorm, the attention backend (RoPE, paged KV cache, attention), and the output projection.
/// </summary>
/// <remarks>
/// The fused projection's rows are q_proj's, then k_proj's, then v_proj's (the backend's packing), so one GEMM
/// produces what <see cref="AttentionBackend.ForwardMixed"/> takes. RoPE is not applied here: the backend applies it
/// at each token's position (FastDeploy's contract).
/// </remarks>
public sealed class DecoderAttention : nn.Module
{
    // Field names are the state-dict names (Hugging Face's, except the fused qkv_proj).
    private readonly Projection qkv_proj;
    private readonly RmsNorm? q_norm;
    private readonly RmsNorm? k_norm;
    private readonly Projection o_proj;
    private readonly int _heads, _kvHeads, _headDim;

    /// <summary>The block of one layer of <paramref name="config"/>.</summary>
    public DecoderAttention(ModelConfig config, ScalarType dtype, Device device) : base(nameof(DecoderAttention))
    {
        ArgumentNullException.ThrowIfNull(config);
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        qkv_proj = new Projection(config.HiddenSize, config.QkvSize, config.AttentionBias, dtype, device);
        if (config.QkNorm)
        {
            q_norm = new RmsNorm(config.HeadDim, config.RmsNormEps, dtype, device);
            k_norm = new RmsNorm(config.HeadDim, config.RmsNormEps, dtype, device);
        }

        o_proj = new Projection((long)config.NumAttentionHeads * config.HeadDim, config.HiddenSize, hasBias: false, dtype, device);
        RegisterComponents();
    }

    /// <summary>The fused q/k/v projection, weight [(H + 2·Hkv)·D, hidden].</summary>
    public Projection QkvProjection => qkv_proj;

    /// <summary>The output projection, weight [hidden, H·D].</summary>
    public Projection OutputProjection => o_proj;

    /// <summary>Qwen3's per-head query norm [D], or null.</summary>
    public RmsNorm? QueryNorm => q_norm;

    /// <summary>Qwen3's per-head key norm [D], or null.</summary>
    public RmsNorm? KeyNorm => k_norm;

    /// <summary>x [T, hidden] (the step's tokens, packed as <paramref name="meta"/> says) → [T, hidden].</summary>
    public Tensor Forward(Tensor x, int layer, AttentionBackend backend, ForwardMeta meta)
    {
        using var qkv = qkv_proj.forward(x);
        if (q_norm is not null && k_norm is not null)
        {
            NormalizeHeadsInPlace(qkv, 0, _heads, q_norm);
            NormalizeHeadsInPlace(qkv, _heads, _kvHeads, k_norm);
        }

        using var attended = backend.ForwardMixed(qkv, layer, meta);
        return o_proj.forward(attended);
    }

    /// <summary>Replaces heads [first, first + count) of the packed qkv rows by their RMSNorm over D.</summary>
    private void NormalizeHeadsInPlace(Tensor qkv, int first, int count, RmsNorm norm)
    {
        using var scope = torch.NewDisposeScope();
        var heads = qkv.narrow(1, (long)first * _headDim, (long)count * _headDim).view(qkv.shape[0], count, _headDim);
        heads.copy_(norm.forward(heads));
    }
}
