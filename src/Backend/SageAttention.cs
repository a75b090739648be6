using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// SageAttention for TorchSharp tensors: INT8 Q·Kᵀ with FP8 (or FP16) P·V, in torch's naming style.
/// </summary>
/// <remarks>
/// <para>
/// Shapes: <c>tensor_layout = "HND"</c> means [B, H, N, D]; <c>"NHD"</c> means [B, N, H, D]. Q has Hq heads and
/// Nq tokens, K and V have Hkv heads and Nk tokens; Hq must be a multiple of Hkv (grouped-query attention).
/// D (head_dim) is 1..128 and equal for Q, K and V. dtype Float16 or BFloat16 (all three alike). The last
/// dimension must have stride 1; other strides are read in place.
/// The output has Q's layout, dtype and device; the LSE is Float32 [B, Hq, Nq] in natural log.
/// </para>
/// <para>
/// CUDA tensors run through the driver API on libtorch's current stream, allocating output and scratch with
/// libtorch's caching allocator: no host copy, no synchronize. CPU tensors run the same kernels on ILGPU's CPU
/// accelerator (slow; the inputs and outputs are copied in and out of the accelerator).
/// </para>
/// <para>Call <see cref="LibTorchLoader.EnsureLoaded()"/> before any other TorchSharp use when libtorch comes from
/// <c>SAGEATTN_LIBTORCH_DIR</c>.</para>
/// </remarks>
public static partial class SageAttention
{
    /// <summary>Sage attention: softmax(Q Kᵀ · sm_scale) V with quantized Q, K, P and V.</summary>
    /// <param name="q">Queries, [B, Hq, Nq, D] (HND) or [B, Nq, Hq, D] (NHD).</param>
    /// <param name="k">Keys, [B, Hkv, Nk, D] or [B, Nk, Hkv, D].</param>
    /// <param name="v">Values, same shape as <paramref name="k"/>.</param>
    /// <param name="tensor_layout">"HND" or "NHD".</param>
    /// <param name="is_causal">
    /// Causal mask. Query i sees key j when j ≤ i + max(0, Nk − Nq): bottom-right aligned when Nq &lt; Nk (a prefill
    /// after a KV cache), top-left when Nq ≥ Nk (what torch does; with Nq &gt; Nk the last queries see every key).
    /// </param>
    /// <param name="sm_scale">Softmax scale; default 1/√D.</param>
    /// <param name="options">Variant, granularity, smoothing; null = <see cref="SageAttentionSettings.Default"/>.</param>
    /// <returns>The attention output in Q's layout and dtype.</returns>
    /// <exception cref="ArgumentNullException">A tensor is null.</exception>
    /// <exception cref="ArgumentException">Rank, layout, shapes, strides, devices or scale are invalid (the message and ParamName name the argument).</exception>
    /// <exception cref="NotSupportedException">dtype other than Float16/BFloat16, a device other than CPU/CUDA, or a CUDA device/variant combination that cannot run.</exception>
    public static Tensor sageattn(Tensor q, Tensor k, Tensor v, string tensor_layout = "HND", bool is_causal = false,
        double? sm_scale = null, SageAttentionSettings? options = null) =>
        Run(AttentionRequest.Create(q, k, v, tensor_layout, is_causal, sm_scale, causalBottomRight: true), options, returnLse: false).Output;

    /// <summary>
    /// <see cref="sageattn"/> that also returns the log-sum-exp of each query row's scaled logits
    /// (natural log, Float32 [B, Hq, Nq], always head-major whatever the layout).
    /// </summary>
    /// <inheritdoc cref="sageattn" path="/param"/>
    /// <inheritdoc cref="sageattn" path="/exception"/>
    public static (Tensor Output, Tensor Lse) sageattn_with_lse(Tensor q, Tensor k, Tensor v, string tensor_layout = "HND",
        bool is_causal = false, double? sm_scale = null, SageAttentionSettings? options = null)
    {
        var (output, lse) = Run(AttentionRequest.Create(q, k, v, tensor_layout, is_causal, sm_scale, causalBottomRight: true), options, returnLse: true);
        return (output, lse!);
    }

    /// <summary>
    /// Drop-in for <c>torch.nn.functional.scaled_dot_product_attention</c> with the same meaning, computed with Sage attention.
    /// </summary>
    /// <param name="query">[B, Hq, L, E].</param>
    /// <param name="key">[B, Hkv, S, E].</param>
    /// <param name="value">[B, Hkv, S, E] (Ev must equal E here).</param>
    /// <param name="attn_mask">Must be null: masks are not supported and are never silently ignored.</param>
    /// <param name="dropout_p">Must be 0: dropout is not supported.</param>
    /// <param name="is_causal">Top-left aligned causal mask, as torch (query i sees keys 0..i).</param>
    /// <param name="scale">Softmax scale; default 1/√E.</param>
    /// <param name="enable_gqa">Allow Hq to be a multiple of Hkv; otherwise they must be equal, as in torch.</param>
    /// <returns>[B, Hq, L, E] in the query's dtype.</returns>
    /// <exception cref="NotSupportedException"><paramref name="attn_mask"/> is given, <paramref name="dropout_p"/> &gt; 0, or the dtype/device is unsupported.</exception>
    /// <exception cref="ArgumentException">Shapes, strides, devices or scale are invalid (names the argument).</exception>
    public static Tensor scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask = null,
        double dropout_p = 0.0, bool is_causal = false, double? scale = null, bool enable_gqa = false)
    {
        if (attn_mask is not null)
            throw new NotSupportedException("attn_mask is not supported by SageAttention; use is_causal or torch's own scaled_dot_product_attention.");
        if (double.IsNaN(dropout_p) || dropout_p < 0 || dropout_p > 1)
            throw new ArgumentOutOfRangeException(nameof(dropout_p), dropout_p, "dropout_p must be in [0, 1].");
        if (dropout_p > 0)
            throw new NotSupportedException($"dropout_p = {dropout_p} is not supported by SageAttention (inference only); pass 0.");
        var request = AttentionRequest.Create(query, key, value, "HND", is_causal, scale, causalBottomRight: false,
            nameof(query), nameof(key), nameof(value), nameof(scale), "layout");
        if (!enable_gqa && request.Shape.HeadsQ != request.Shape.HeadsKv)
            throw new ArgumentException(
                $"query has {request.Shape.HeadsQ} heads but key has {request.Shape.HeadsKv}; pass enable_gqa: true for grouped-query attention.", nameof(key));
        return Run(request, null, returnLse: false).Output;
    }

    private static (Tensor Output, Tensor? Lse) Run(AttentionRequest request, SageAttentionSettings? options, bool returnLse)
    {
        var settings = options ?? SageAttentionSettings.Default;
        return request.Device.type == DeviceType.CUDA
            ? CudaAttentionExecutor.Run(request, settings, returnLse)
            : CpuAttentionExecutor.Run(request, settings.Resolve(null), returnLse);
    }
}
