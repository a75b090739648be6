using SageAttn.Backend.Engine;
using SageAttn.Models.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SageAttn.Models;

/// <summary>
/// A dense decoder (Qwen2.5, Qwen3 or ERNIE-4.5, per <see cref="ModelConfig.Family"/>) whose attention goes through an
/// <see cref="AttentionBackend"/>: token embedding, <see cref="ModelConfig.NumHiddenLayers"/> pre-norm layers, final
/// RMSNorm, LM head (tied to the embedding or not).
/// </summary>
/// <remarks>
/// Parameters are created uninitialized on <see cref="Device"/> in <see cref="DType"/>: fill them with
/// <see cref="Weights.RandomWeights.Initialize"/> or <see cref="Weights.HfCheckpoint.Load"/>. State-dict names are
/// Hugging Face's without the "model." prefix, except the fused <c>self_attn.qkv_proj</c>
/// (see docs/models.md). The model never synchronizes the device.
/// </remarks>
public sealed class DecoderModel : nn.Module
{
    // Field names are the state-dict names.
    private readonly TokenEmbedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;
    private readonly Projection? lm_head;

    /// <summary>A model of <paramref name="config"/> on <paramref name="device"/> in <paramref name="dtype"/> (Float16 or BFloat16).</summary>
    /// <exception cref="ArgumentException">The config is inconsistent, or the dtype is not Float16/BFloat16.</exception>
    public DecoderModel(ModelConfig config, ScalarType dtype, Device device) : base(nameof(DecoderModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(device);
        config.Validate();
        if (dtype != ScalarType.Float16 && dtype != ScalarType.BFloat16)
            throw new ArgumentException($"dtype must be Float16 or BFloat16 (what the attention backends take), got {dtype}.", nameof(dtype));
        Config = config;
        DType = dtype;
        Device = device;
        embed_tokens = new TokenEmbedding(config.VocabSize, config.HiddenSize, dtype, device);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new DecoderLayer(config, i, dtype, device)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        lm_head = config.TieWordEmbeddings ? null : new Projection(config.HiddenSize, config.VocabSize, hasBias: false, dtype, device);
        RegisterComponents();
    }

    /// <summary>The model's shape.</summary>
    public ModelConfig Config { get; }

    /// <summary>dtype of every parameter and activation.</summary>
    public ScalarType DType { get; }

    /// <summary>Device of every parameter.</summary>
    public Device Device { get; }

    /// <summary>The decoder layers.</summary>
    public IReadOnlyList<DecoderLayer> Layers => layers.ToArray();

    /// <summary>The token embedding.</summary>
    public TokenEmbedding Embedding => embed_tokens;

    /// <summary>
    /// The attention backend config this model needs: its attention shape, RoPE style and θ, dtype, and
    /// <paramref name="maxPositions"/> positions (default: the config's max_position_embeddings).
    /// </summary>
    public AttentionBackendConfig BackendConfig(int? maxPositions = null, int blockSize = 64, SageAttn.Backend.SageAttentionSettings? sage = null) => new()
    {
        NumLayers = Config.NumHiddenLayers,
        NumHeads = Config.NumAttentionHeads,
        KvHeads = Config.NumKeyValueHeads,
        HeadDim = Config.HeadDim,
        BlockSize = blockSize,
        RopeStyle = Config.InterleavedRope ? RopeStyle.Interleaved : RopeStyle.Neox,
        RopeTheta = Config.RopeTheta,
        MaxPositions = maxPositions ?? Config.MaxPositionEmbeddings,
        DType = DType,
        Sage = sage,
    };

    /// <summary>
    /// Runs one engine step: <paramref name="tokenIds"/> [T] (int64 or int32 on <see cref="Device"/>, the step's
    /// tokens packed in <paramref name="meta"/>'s batch order) through every layer. Returns the last layer's hidden
    /// states [T, hidden] before the final norm (feed the rows of interest to <see cref="Logits"/>).
    /// </summary>
    /// <remarks>Call <see cref="AttentionBackend.InitAttentionMetadata"/> on <paramref name="meta"/> first.</remarks>
    /// <exception cref="ArgumentException">tokenIds is not rank 1 with meta.TotalTokens entries (ParamName "tokenIds").</exception>
    public Tensor Forward(Tensor tokenIds, AttentionBackend backend, ForwardMeta meta)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(meta);
        if (tokenIds.dim() != 1 || tokenIds.shape[0] != meta.TotalTokens)
            throw new ArgumentException($"tokenIds must be [{meta.TotalTokens}] (the step's tokens), got [{string.Join(", ", tokenIds.shape)}].", nameof(tokenIds));
        using var noGrad = torch.no_grad();
        var x = embed_tokens.forward(tokenIds);
        try
        {
            foreach (var layer in layers)
            {
                // Each layer's temporaries die with its scope, so a 32K-token prefill holds one layer's activations at a time.
                using var scope = torch.NewDisposeScope();
                layer.Forward(x, backend, meta);
            }

            return x;
        }
        catch
        {
            x.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Float32 logits [rows, vocab] of the hidden states <paramref name="hidden"/>[<paramref name="rows"/>]
    /// (rows: int64 indices on <see cref="Device"/>): final norm, then the LM head.
    /// </summary>
    public Tensor Logits(Tensor hidden, Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(rows);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var selected = hidden.index_select(0, rows);
        var normed = norm.forward(selected);
        var logits = nn.functional.linear(normed, lm_head?.Weight ?? embed_tokens.Weight);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
