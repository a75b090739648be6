using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// An attention implementation an inference engine selects by name (FastDeploy's AttentionBackend): it answers the
/// KV-cache shape, prepares per-step data once, and runs every layer's attention on a step's packed tokens.
/// </summary>
/// <remarks>
/// <para>A step: the engine builds a <see cref="ForwardMeta"/>, calls <see cref="InitAttentionMetadata"/> once, then
/// <see cref="ForwardMixed"/> for each layer, then disposes the meta.</para>
/// <para>Constructors must stay cheap (no device work): engines build a backend just to ask the cache shape.</para>
/// </remarks>
public abstract class AttentionBackend : IDisposable
{
    /// <summary>A backend for <paramref name="config"/> (validated here).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="config"/> is null.</exception>
    /// <exception cref="ArgumentException">The config is invalid (see <see cref="AttentionBackendConfig.Validate"/>).</exception>
    protected AttentionBackend(AttentionBackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
    }

    /// <summary>The config the backend was built with.</summary>
    public AttentionBackendConfig Config { get; }

    /// <summary>The name the registry knows the backend by ("SAGE_ATTN", "SDPA").</summary>
    public abstract string Name { get; }

    /// <summary>Key and value cache shapes of one layer: [maxNumBlocks, Hkv, BlockSize, D] each.</summary>
    /// <exception cref="ArgumentException"><paramref name="maxNumBlocks"/> is not positive.</exception>
    public virtual KvCacheShape GetKvCacheShape(int maxNumBlocks)
    {
        if (maxNumBlocks <= 0)
            throw new ArgumentException($"maxNumBlocks must be positive, got {maxNumBlocks}.", nameof(maxNumBlocks));
        return new KvCacheShape(maxNumBlocks, Config.KvHeads, Config.BlockSize, Config.HeadDim);
    }

    /// <summary>
    /// Builds what the kernels need for this step (cache slots, gather indices, rotary rows, per-kind batches…) and stores
    /// it in <see cref="ForwardMeta.AttentionMetadata"/>. Call once per step, before the first layer.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="meta"/> is null.</exception>
    /// <exception cref="ArgumentException">The meta's cache or rotary table does not match the config.</exception>
    public abstract void InitAttentionMetadata(ForwardMeta meta);

    /// <summary>
    /// Attention of one layer for a step that may mix prefills and decodes: applies RoPE to the q and k parts of
    /// <paramref name="qkv"/> at each token's position, writes the new keys and values into the layer's paged cache,
    /// and attends each request's new tokens to its cached and new keys (causal).
    /// </summary>
    /// <param name="qkv">[T, (H + 2·Hkv)·D] in the config's dtype on the cache's device: per token, H query heads, then Hkv key heads, then Hkv value heads, D channels each; tokens packed in the meta's batch order; RoPE not applied.</param>
    /// <param name="layer">The layer index, 0 .. NumLayers − 1.</param>
    /// <param name="meta">The step, after <see cref="InitAttentionMetadata"/>.</param>
    /// <returns>[T, H·D] in qkv's dtype.</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">qkv's rank, shape, dtype or device is wrong (ParamName "qkv").</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layer"/> is out of range.</exception>
    /// <exception cref="InvalidOperationException"><see cref="InitAttentionMetadata"/> was not called on this meta by this kind of backend.</exception>
    public abstract Tensor ForwardMixed(Tensor qkv, int layer, ForwardMeta meta);

    /// <summary>Checks that the step's cache and rotary table were made for this config.</summary>
    protected void ValidateStep(ForwardMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        var expected = GetKvCacheShape(meta.Cache.Shape.MaxNumBlocks);
        if (meta.Cache.Shape != expected)
            throw new ArgumentException($"the step's cache has shape {meta.Cache.Shape} but this backend needs {expected}.", nameof(meta));
        if (meta.Cache.NumLayers < Config.NumLayers)
            throw new ArgumentException($"the step's cache has {meta.Cache.NumLayers} layers but the config has {Config.NumLayers}.", nameof(meta));
        if (meta.Cache.DType != Config.DType)
            throw new ArgumentException($"the step's cache is {meta.Cache.DType} but the config's dtype is {Config.DType}.", nameof(meta));
    }

    /// <summary>Validates the arguments of <see cref="ForwardMixed"/> and returns the step's metadata of type <typeparamref name="TMetadata"/>.</summary>
    protected TMetadata ValidateForward<TMetadata>(Tensor qkv, int layer, ForwardMeta meta) where TMetadata : PagedAttentionMetadata
    {
        ArgumentNullException.ThrowIfNull(qkv);
        ArgumentNullException.ThrowIfNull(meta);
        if ((uint)layer >= (uint)Config.NumLayers)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in 0 .. {Config.NumLayers - 1}.");
        if (qkv.dim() != 2 || qkv.shape[0] != meta.TotalTokens || qkv.shape[1] != Config.QkvWidth)
            throw new ArgumentException(
                $"qkv must be [T, (H + 2·Hkv)·D] = [{meta.TotalTokens}, {Config.QkvWidth}] for this step, got [{string.Join(", ", qkv.shape)}].", nameof(qkv));
        if (qkv.dtype != Config.DType)
            throw new ArgumentException($"qkv is {qkv.dtype} but the config's dtype is {Config.DType}.", nameof(qkv));
        if (qkv.device_type != meta.Cache.Device.type || (qkv.device_type == DeviceType.CUDA && qkv.device_index != meta.Cache.Device.index))
            throw new ArgumentException($"qkv is on {qkv.device} but the cache is on {meta.Cache.Device}.", nameof(qkv));
        return meta.AttentionMetadata as TMetadata
            ?? throw new InvalidOperationException($"{Name}: call InitAttentionMetadata on this step's meta (with this backend) before ForwardMixed.");
    }

    /// <summary>
    /// The part every backend shares: splits qkv, applies RoPE to q and k at the tokens' positions, and writes k
    /// and v into <paramref name="layer"/>'s cache. Returns q [T, H, D] and k [T, Hkv, D] rotated, v [T, Hkv, D]
    /// (new tensors in the caller's dispose scope).
    /// </summary>
    protected (Tensor Query, Tensor Key, Tensor Value) ApplyRopeAndWriteCache(Tensor qkv, int layer, ForwardMeta meta, PagedAttentionMetadata metadata)
    {
        long t = qkv.shape[0];
        int h = Config.NumHeads, hkv = Config.KvHeads, d = Config.HeadDim;
        var q = qkv.narrow(1, 0, h * d).view(t, h, d);
        var k = qkv.narrow(1, h * d, hkv * d).view(t, hkv, d);
        var v = qkv.narrow(1, (h + hkv) * d, hkv * d).contiguous().view(t, hkv, d);
        var qRotated = RotaryTable.Apply(q, metadata.RopeCos, metadata.RopeSin, Config.RopeStyle);
        var kRotated = RotaryTable.Apply(k, metadata.RopeCos, metadata.RopeSin, Config.RopeStyle);
        meta.Cache.Write(layer, kRotated, v, metadata.CacheRows);
        return (qRotated, kRotated, v);
    }

    /// <summary>Releases what the backend holds (nothing by default).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases resources when <paramref name="disposing"/>.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }
}
