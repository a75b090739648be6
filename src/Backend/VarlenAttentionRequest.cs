using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// One validated <c>sageattn_varlen</c> call: packed Q [Tq, Hq, D], K and V [Tk, Hkv, D], cu_seqlens on the
/// same device, the max lengths, dtype, scale and causal flag.
/// </summary>
/// <remarks>
/// Everything the shapes tell is checked here, each exception naming its argument. cu_seqlens contents are
/// checked only for CPU tensors (their values are on the host anyway); on CUDA they stay on the device and are
/// trusted, as in FlashAttention (the kernels clamp them and never leave their buffers).
/// </remarks>
internal sealed record VarlenAttentionRequest(
    Tensor Q, Tensor K, Tensor V, Tensor CuSeqlensQ, Tensor CuSeqlensK, TensorElementType ElementType, ScalarType DType,
    Device Device, VarlenShape? Shape, int Batch, int HeadsQ, int HeadDim, float SmScale, bool Causal)
{
    /// <summary>Validates the arguments of <c>sageattn_varlen</c>; <see cref="Shape"/> is null when Q holds no token.</summary>
    public static VarlenAttentionRequest Create(Tensor q, Tensor k, Tensor v, Tensor cuSeqlensQ, Tensor cuSeqlensK,
        int maxSeqlenQ, int maxSeqlenK, bool isCausal, double? smScale)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(cuSeqlensQ, "cu_seqlens_q");
        ArgumentNullException.ThrowIfNull(cuSeqlensK, "cu_seqlens_k");

        var dtype = q.dtype;
        var elementType = dtype switch
        {
            ScalarType.Float16 => TensorElementType.Float16,
            ScalarType.BFloat16 => TensorElementType.BFloat16,
            _ => throw new NotSupportedException($"q has dtype {dtype}; SageAttention supports Float16 and BFloat16 only."),
        };
        foreach (var (t, name) in new[] { (k, nameof(k)), (v, nameof(v)) })
        {
            if (t.dtype != dtype)
                throw new ArgumentException($"{name} has dtype {t.dtype} but q has {dtype}; all inputs must share one dtype.", name);
        }
        foreach (var (t, name) in new[] { (q, nameof(q)), (k, nameof(k)), (v, nameof(v)) })
        {
            if (t.dim() != 3)
                throw new ArgumentException($"{name} must have rank 3 ([total tokens, heads, head_dim], sequences packed back to back), got rank {t.dim()}.", name);
            if (t.shape[1] == 0 || t.shape[2] == 0)
                throw new ArgumentException($"{name} has a zero-length head or channel dimension: [{string.Join(", ", t.shape)}].", name);
            if (t.stride(2) != 1)
                throw new ArgumentException($"{name} has a non-contiguous last dimension (stride {t.stride(2)}); call .contiguous() first.", name);
        }
        foreach (var (t, name) in new[] { (cuSeqlensQ, "cu_seqlens_q"), (cuSeqlensK, "cu_seqlens_k") })
        {
            if (t.dtype != ScalarType.Int32)
                throw new ArgumentException($"{name} must be Int32, got {t.dtype}.", name);
            if (t.dim() != 1)
                throw new ArgumentException($"{name} must have rank 1 ([B + 1] offsets), got rank {t.dim()}.", name);
            if (t.shape[0] < 2)
                throw new ArgumentException($"{name} must hold B + 1 ≥ 2 offsets, has {t.shape[0]}.", name);
            if (t.stride(0) != 1)
                throw new ArgumentException($"{name} must be contiguous (stride {t.stride(0)}).", name);
        }
        if (cuSeqlensK.shape[0] != cuSeqlensQ.shape[0])
            throw new ArgumentException(
                $"cu_seqlens_k describes {cuSeqlensK.shape[0] - 1} sequences, cu_seqlens_q {cuSeqlensQ.shape[0] - 1}; they must agree.", "cu_seqlens_k");

        var device = q.device;
        foreach (var (t, name) in new[] { (k, nameof(k)), (v, nameof(v)), (cuSeqlensQ, "cu_seqlens_q"), (cuSeqlensK, "cu_seqlens_k") })
        {
            if (t.device_type != q.device_type || t.device_index != q.device_index)
                throw new ArgumentException($"{name} is on {t.device} but q is on {q.device}.", name);
        }
        if (q.device_type != DeviceType.CPU && q.device_type != DeviceType.CUDA)
            throw new NotSupportedException($"q is on {q.device}; only CPU and CUDA tensors are supported.");

        long tq = q.shape[0], hq = q.shape[1], d = q.shape[2];
        long tk = k.shape[0], hkv = k.shape[1];
        if (d > 128)
            throw new ArgumentException($"head_dim of q must be in 1..128, got {d}.", nameof(q));
        if (k.shape[2] != d)
            throw new ArgumentException($"head_dim of k ({k.shape[2]}) must equal that of q ({d}).", nameof(k));
        if (v.shape[2] != d)
            throw new ArgumentException($"head_dim of v ({v.shape[2]}) must equal that of q ({d}).", nameof(v));
        if (v.shape[0] != tk || v.shape[1] != hkv)
            throw new ArgumentException($"v is [{string.Join(", ", v.shape)}] but k is [{string.Join(", ", k.shape)}]; they must match.", nameof(v));
        if (hq % hkv != 0)
            throw new ArgumentException($"query heads ({hq}) must be a multiple of key/value heads ({hkv}) of k.", nameof(k));
        if (tq > int.MaxValue / 2 || tk > int.MaxValue / 2)
            throw new ArgumentException("q or k holds too many tokens for 32-bit token offsets.", tq > tk ? nameof(q) : nameof(k));

        double scale = smScale ?? 1.0 / Math.Sqrt(d);
        if (!(scale > 0) || double.IsInfinity(scale) || !float.IsFinite((float)scale))
            throw new ArgumentException($"sm_scale must be positive and finite, got {scale}.", "sm_scale");

        int batch = checked((int)cuSeqlensQ.shape[0] - 1);
        VarlenShape? shape = null;
        if (tq > 0)
        {
            // Shape checks (GQA, head_dim, tokens, max lengths able to cover the totals) with the API's names.
            shape = new VarlenShape(batch, (int)hq, (int)hkv, (int)tq, (int)tk, maxSeqlenQ, maxSeqlenK, (int)d);
            if (q.device_type == DeviceType.CPU)
            {
                CheckOffsets(cuSeqlensQ, (int)tq, maxSeqlenQ, "cu_seqlens_q", "max_seqlen_q");
                CheckOffsets(cuSeqlensK, (int)tk, maxSeqlenK, "cu_seqlens_k", "max_seqlen_k");
            }
        }
        return new VarlenAttentionRequest(q, k, v, cuSeqlensQ, cuSeqlensK, elementType, dtype, device, shape, batch, (int)hq, (int)d,
            (float)scale, isCausal);
    }

    /// <summary>The contents check of host offsets: 0 first, non-decreasing, T last, no sequence longer than the max.</summary>
    private static void CheckOffsets(Tensor cu, int total, int max, string name, string maxName)
    {
        var offsets = cu.data<int>().ToArray();
        if (offsets[0] != 0)
            throw new ArgumentException($"{name}[0] must be 0, got {offsets[0]}.", name);
        for (int s = 0; s + 1 < offsets.Length; s++)
        {
            int length = offsets[s + 1] - offsets[s];
            if (length < 0)
                throw new ArgumentException($"{name} must be non-decreasing: [{s}] = {offsets[s]} > [{s + 1}] = {offsets[s + 1]}.", name);
            if (length > max)
                throw new ArgumentException($"sequence {s} has {length} tokens but {maxName} is {max}.", maxName);
        }
        if (offsets[^1] != total)
            throw new ArgumentException($"{name}[B] must equal the packed token count {total}, got {offsets[^1]}.", name);
    }

    /// <summary>A packed [T, H, D] tensor as the kernels' [1, H, T, D] view: (heads, tokens, head dim, head stride, token stride).</summary>
    public static (int Heads, int Tokens, int HeadDim, long StrideHead, long StrideToken) Packed(Tensor t) =>
        ((int)t.shape[1], (int)t.shape[0], (int)t.shape[2], t.stride(1), t.stride(0));
}
