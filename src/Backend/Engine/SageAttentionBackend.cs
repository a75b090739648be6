using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// The SageAttention backend ("SAGE_ATTN"): RoPE and the paged-cache write as every backend, then the step's prefill
/// requests through Sage attention (INT8 Q·Kᵀ, FP8/FP16 P·V) on their cached prefix plus new keys, causal
/// bottom-right, and its decode requests through the decode path; the two results are routed back to the
/// tokens' rows.
/// </summary>
/// <remarks>
/// <para>The attention calls are isolated in <see cref="PrefillAttention"/> and <see cref="DecodeAttention"/>. Today
/// both run dense <see cref="SageAttention.sageattn"/> per request on keys gathered from the cache; the metadata
/// already carries what the varlen prefill kernel (cu_seqlens, max lengths) and the paged decode kernel
/// (block tables, sequence lengths) take, so switching is a change inside those two methods.</para>
/// <para>No host synchronization: every length used to split tensors is host-known from <see cref="ForwardMeta"/>.</para>
/// </remarks>
public sealed class SageAttentionBackend : AttentionBackend
{
    /// <summary>The registry name.</summary>
    public const string BackendName = "SAGE_ATTN";

    /// <summary>A backend for <paramref name="config"/> (cheap: no device work, no kernel compilation).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    /// <exception cref="ArgumentException">The config is invalid.</exception>
    public SageAttentionBackend(AttentionBackendConfig config) : base(config)
    {
    }

    /// <inheritdoc/>
    public override string Name => BackendName;

    /// <inheritdoc/>
    public override void InitAttentionMetadata(ForwardMeta meta)
    {
        ValidateStep(meta);
        (meta.AttentionMetadata as IDisposable)?.Dispose();
        meta.AttentionMetadata = new SageAttentionMetadata(meta);
    }

    /// <inheritdoc/>
    public override Tensor ForwardMixed(Tensor qkv, int layer, ForwardMeta meta)
    {
        var metadata = ValidateForward<SageAttentionMetadata>(qkv, layer, meta);
        using var scope = torch.NewDisposeScope();
        var (q, _, _) = ApplyRopeAndWriteCache(qkv, layer, meta, metadata);
        var keyCache = meta.Cache.Key(layer);
        var valueCache = meta.Cache.Value(layer);

        Tensor output;
        if (metadata.AllPrefill)
            output = PrefillAttention(q, meta.Cache, keyCache, valueCache, metadata);
        else if (metadata.AllDecode)
            output = DecodeAttention(q, meta.Cache, keyCache, valueCache, metadata);
        else
        {
            output = torch.empty_like(q);
            var prefill = PrefillAttention(q.index_select(0, metadata.PrefillTokens!), meta.Cache, keyCache, valueCache, metadata);
            output.index_copy_(0, metadata.PrefillTokens!, prefill);
            var decode = DecodeAttention(q.index_select(0, metadata.DecodeTokens!), meta.Cache, keyCache, valueCache, metadata);
            output.index_copy_(0, metadata.DecodeTokens!, decode);
        }

        return scope.MoveToOuter(output.reshape(meta.TotalTokens, Config.NumHeads * Config.HeadDim));
    }

    /// <summary>
    /// Attention of the prefill requests' new tokens, packed as q [Tp, H, D] (rotated), to their cached and new
    /// keys (already in the cache), causal bottom-right per request. Returns [Tp, H, D] in q's dtype.
    /// </summary>
    /// <remarks>
    /// Interim: one dense <c>sageattn</c> per request (its causal mask is bottom-right when Nq &lt; Nk). With the
    /// varlen kernel the loop becomes
    /// <c>SageAttention.sageattn_varlen(q, keys, values, m.PrefillCuSeqLensQ!, m.PrefillCuSeqLensK!, m.PrefillMaxSeqLenQ, m.PrefillMaxSeqLenK, is_causal: true, Config.Scale, Config.Sage)</c>.
    /// </remarks>
    private Tensor PrefillAttention(Tensor q, PagedKvCache cache, Tensor keyCache, Tensor valueCache, SageAttentionMetadata m)
    {
        var keys = cache.Gather(keyCache, m.PrefillKeyRows!);
        var values = cache.Gather(valueCache, m.PrefillKeyRows!);
        var outputs = new Tensor[m.PrefillBatch.Length];
        for (int i = 0; i < outputs.Length; i++)
        {
            int nq = m.PrefillQueryStarts[i + 1] - m.PrefillQueryStarts[i];
            int nk = m.PrefillKeyStarts[i + 1] - m.PrefillKeyStarts[i];
            outputs[i] = SageAttention.sageattn(
                q.narrow(0, m.PrefillQueryStarts[i], nq).unsqueeze(0),
                keys.narrow(0, m.PrefillKeyStarts[i], nk).unsqueeze(0),
                values.narrow(0, m.PrefillKeyStarts[i], nk).unsqueeze(0),
                "NHD", is_causal: true, sm_scale: Config.Scale, options: Config.Sage).squeeze(0);
        }

        return outputs.Length == 1 ? outputs[0] : torch.cat(outputs, 0);
    }

    /// <summary>
    /// Attention of the decode requests' single new tokens, q [Bd, H, D] (rotated), to all their keys in the paged
    /// cache. Returns [Bd, H, D] in q's dtype.
    /// </summary>
    /// <remarks>
    /// Interim: gather each request's keys and run dense <c>sageattn</c> with Nq = 1 (bottom-right causal = every key).
    /// With the paged decode kernel the body becomes
    /// <c>PagedAttention.decode(q, keyCache, valueCache, m.DecodeBlockTables!, m.DecodeSeqLens!, m.DecodeMaxSeqLen, Config.Scale)</c>
    /// (and <see cref="SageAttentionMetadata.DecodeKeyRows"/> is no longer needed).
    /// </remarks>
    private Tensor DecodeAttention(Tensor q, PagedKvCache cache, Tensor keyCache, Tensor valueCache, SageAttentionMetadata m)
    {
        var keys = cache.Gather(keyCache, m.DecodeKeyRows!);
        var values = cache.Gather(valueCache, m.DecodeKeyRows!);
        var outputs = new Tensor[m.DecodeBatch.Length];
        for (int i = 0; i < outputs.Length; i++)
        {
            int nk = m.DecodeSeqLensHost[i];
            outputs[i] = SageAttention.sageattn(
                q.narrow(0, i, 1).unsqueeze(0),
                keys.narrow(0, m.DecodeKeyStarts[i], nk).unsqueeze(0),
                values.narrow(0, m.DecodeKeyStarts[i], nk).unsqueeze(0),
                "NHD", is_causal: true, sm_scale: Config.Scale, options: Config.Sage).squeeze(0);
        }

        return outputs.Length == 1 ? outputs[0] : torch.cat(outputs, 0);
    }
}
