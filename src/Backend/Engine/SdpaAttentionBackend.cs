using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// The reference backend ("SDPA"): RoPE and the paged-cache write as every backend, then for each request its keys
/// and values gathered from the cache and torch's <c>scaled_dot_product_attention</c> (TorchSharp), one call per request.
/// </summary>
/// <remarks>
/// <para>TorchSharp's SDPA has no GQA or scale parameter: K/V heads are repeated to H, and the ratio of the configured
/// scale to torch's default 1/√D is folded into Q. CPU tensors are computed in Float32 (libtorch's CPU kernels for
/// half types are slow and round more); CUDA tensors stay in their dtype so torch picks its fused kernels.</para>
/// <para>Meant as the accuracy and speed reference for <see cref="SageAttentionBackend"/>, not as a fast engine path.</para>
/// </remarks>
public sealed class SdpaAttentionBackend : AttentionBackend
{
    /// <summary>The registry name.</summary>
    public const string BackendName = "SDPA";

    /// <summary>A backend for <paramref name="config"/> (cheap: no device work).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    /// <exception cref="ArgumentException">The config is invalid.</exception>
    public SdpaAttentionBackend(AttentionBackendConfig config) : base(config)
    {
    }

    /// <inheritdoc/>
    public override string Name => BackendName;

    /// <inheritdoc/>
    public override void InitAttentionMetadata(ForwardMeta meta)
    {
        ValidateStep(meta);
        (meta.AttentionMetadata as IDisposable)?.Dispose();
        meta.AttentionMetadata = new SdpaAttentionMetadata(meta);
    }

    /// <inheritdoc/>
    public override Tensor ForwardMixed(Tensor qkv, int layer, ForwardMeta meta)
    {
        var metadata = ValidateForward<SdpaAttentionMetadata>(qkv, layer, meta);
        using var scope = torch.NewDisposeScope();
        var (q, _, _) = ApplyRopeAndWriteCache(qkv, layer, meta, metadata);
        var keys = meta.Cache.Gather(meta.Cache.Key(layer), metadata.KeyRows);
        var values = meta.Cache.Gather(meta.Cache.Value(layer), metadata.KeyRows);

        var computeType = qkv.device_type == DeviceType.CPU ? ScalarType.Float32 : qkv.dtype;
        double qFactor = Config.Scale * Math.Sqrt(Config.HeadDim);
        var outputs = new Tensor[meta.BatchSize];
        for (int b = 0; b < meta.BatchSize; b++)
        {
            var r = meta.Requests[b];
            // [n, H, D] → [1, H, n, D]; keys [L, Hkv, D] → [1, H, L, D].
            var qb = q.narrow(0, meta.QueryStarts[b], r.NewTokens).to(computeType).transpose(0, 1).unsqueeze(0);
            if (qFactor != 1.0)
                qb = qb * qFactor;
            var kb = RepeatKvHeads(keys.narrow(0, meta.KeyStarts[b], r.TotalTokens).to(computeType));
            var vb = RepeatKvHeads(values.narrow(0, meta.KeyStarts[b], r.TotalTokens).to(computeType));
            var mask = metadata.PrefixMasks[b];
            bool causal = mask is null && r.CachedTokens == 0 && r.NewTokens > 1;
            var ob = torch.nn.functional.scaled_dot_product_attention(qb, kb, vb, attn_mask: mask, is_casual: causal);
            outputs[b] = ob.squeeze(0).transpose(0, 1);
        }

        var output = (outputs.Length == 1 ? outputs[0] : torch.cat(outputs, 0))
            .to(qkv.dtype).reshape(meta.TotalTokens, Config.NumHeads * Config.HeadDim);
        return scope.MoveToOuter(output);
    }

    /// <summary>[L, Hkv, D] → [1, H, L, D], each key/value head repeated for its group of query heads.</summary>
    private Tensor RepeatKvHeads(Tensor kv)
    {
        var heads = kv.transpose(0, 1);
        if (Config.GroupSize > 1)
            heads = heads.repeat_interleave(Config.GroupSize, 0);
        return heads.unsqueeze(0);
    }
}
