using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>Sage attention over packed variable-length sequences (prefill of an inference engine).</summary>
public static partial class SageAttention
{
    /// <summary>
    /// Sage attention over B sequences packed back to back with no padding, in one launch per kernel: sequence s
    /// has queries <c>q[cu_seqlens_q[s] .. cu_seqlens_q[s+1])</c> and keys/values <c>k, v[cu_seqlens_k[s] .. cu_seqlens_k[s+1])</c>.
    /// </summary>
    /// <remarks>
    /// <para>Keys may be longer than queries (chunked prefill, prefix caching: a sequence's keys are its cached
    /// prefix followed by its new tokens). Quantization is per sequence, as SageAttention does per batch entry.</para>
    /// <para>cu_seqlens must hold 0, non-decreasing offsets and end at the packed token count; no sequence may be
    /// longer than its max_seqlen. On CPU tensors these contents are checked (ArgumentException). On CUDA tensors
    /// they stay on the device and are trusted, like FlashAttention (no host read, no synchronize); the kernels clamp
    /// every offset, so wrong contents give wrong numbers but never an access outside the tensors.</para>
    /// <para>A query row that sees no key (causal with fewer keys than queries, or no keys) gets output 0 and LSE −∞.</para>
    /// </remarks>
    /// <param name="q">Queries [Tq, Hq, D], Float16 or BFloat16; last dimension contiguous.</param>
    /// <param name="k">Keys [Tk, Hkv, D], Hq a multiple of Hkv (grouped-query attention, any group size).</param>
    /// <param name="v">Values, same shape as <paramref name="k"/>.</param>
    /// <param name="cu_seqlens_q">Int32 [B + 1] query offsets on q's device.</param>
    /// <param name="cu_seqlens_k">Int32 [B + 1] key offsets on q's device.</param>
    /// <param name="max_seqlen_q">The longest sequence's query count (sizes the grid; B·max_seqlen_q ≥ Tq).</param>
    /// <param name="max_seqlen_k">The longest sequence's key count (B·max_seqlen_k ≥ Tk).</param>
    /// <param name="is_causal">Bottom-right causal mask per sequence: query i of a sequence with Lq queries and Lk keys
    /// sees key j iff j ≤ i + (Lk − Lq).</param>
    /// <param name="sm_scale">Softmax scale; default 1/√D.</param>
    /// <param name="options">Variant, granularity, smoothing; null = <see cref="SageAttentionSettings.Default"/>.</param>
    /// <returns>[Tq, Hq, D] in q's dtype and device.</returns>
    /// <exception cref="ArgumentNullException">A tensor is null.</exception>
    /// <exception cref="ArgumentException">Rank, shapes, dtype of cu_seqlens, devices, max lengths or scale are invalid (ParamName names the argument).</exception>
    /// <exception cref="NotSupportedException">dtype other than Float16/BFloat16, a device other than CPU/CUDA, or a CUDA device/variant combination that cannot run.</exception>
    public static Tensor sageattn_varlen(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, Tensor cu_seqlens_k,
        int max_seqlen_q, int max_seqlen_k, bool is_causal = false, double? sm_scale = null, SageAttentionSettings? options = null) =>
        RunVarlen(VarlenAttentionRequest.Create(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal, sm_scale),
            options, returnLse: false).Output;

    /// <summary>
    /// <see cref="sageattn_varlen"/> that also returns each query row's log-sum-exp of its scaled logits:
    /// natural log, Float32 [Hq, Tq] (head-major over the packed queries, FlashAttention's varlen layout).
    /// </summary>
    /// <inheritdoc cref="sageattn_varlen" path="/param"/>
    /// <inheritdoc cref="sageattn_varlen" path="/exception"/>
    public static (Tensor Output, Tensor Lse) sageattn_varlen_with_lse(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, Tensor cu_seqlens_k,
        int max_seqlen_q, int max_seqlen_k, bool is_causal = false, double? sm_scale = null, SageAttentionSettings? options = null)
    {
        var (output, lse) = RunVarlen(VarlenAttentionRequest.Create(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
            is_causal, sm_scale), options, returnLse: true);
        return (output, lse!);
    }

    private static (Tensor Output, Tensor? Lse) RunVarlen(VarlenAttentionRequest request, SageAttentionSettings? options, bool returnLse)
    {
        if (request.Shape is null)
        {
            // No query token (a batch with nothing to prefill): nothing to launch.
            var empty = torch.empty([0, request.HeadsQ, request.HeadDim], request.DType, request.Device);
            return (empty, returnLse ? torch.empty([request.HeadsQ, 0], ScalarType.Float32, request.Device) : null);
        }
        var settings = options ?? SageAttentionSettings.Default;
        return request.Device.type == DeviceType.CUDA
            ? CudaAttentionExecutor.RunVarlen(request, settings, returnLse)
            : CpuAttentionExecutor.RunVarlen(request, settings.Resolve(null, packed: true), returnLse);
    }
}
