using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// One validated attention call: Q, K, V seen as [B, H, N, D] through element strides (NHD inputs have
/// their head and token strides swapped), the dtype, device, layout, scale and causal alignment.
/// </summary>
/// <remarks>
/// Every user-facing check lives here so the CPU and CUDA executors see only valid input; each exception
/// names the argument (ParamName and message) the way TorchSharp users read them.
/// </remarks>
internal sealed record AttentionRequest(
    Tensor Q, Tensor K, Tensor V, bool Nhd, TensorElementType ElementType, ScalarType DType, Device Device,
    AttentionShape Shape, float SmScale, bool Causal, int CausalOffset)
{
    /// <summary>Validates the tensors of <c>sageattn</c> or <c>scaled_dot_product_attention</c>.</summary>
    /// <param name="causalBottomRight">Align the causal mask bottom-right when Nq &lt; Nk (sageattn) instead of always top-left (torch SDPA).</param>
    public static AttentionRequest Create(Tensor q, Tensor k, Tensor v, string layout, bool isCausal, double? smScale,
        bool causalBottomRight, string qName = "q", string kName = "k", string vName = "v", string scaleName = "sm_scale",
        string layoutName = "tensor_layout")
    {
        ArgumentNullException.ThrowIfNull(q, qName);
        ArgumentNullException.ThrowIfNull(k, kName);
        ArgumentNullException.ThrowIfNull(v, vName);
        ArgumentNullException.ThrowIfNull(layout, layoutName);
        bool nhd = layout switch
        {
            "HND" => false,
            "NHD" => true,
            _ => throw new ArgumentException($"{layoutName} must be \"HND\" ([B, H, N, D]) or \"NHD\" ([B, N, H, D]), got \"{layout}\".", layoutName),
        };

        var dtype = q.dtype;
        var elementType = dtype switch
        {
            ScalarType.Float16 => TensorElementType.Float16,
            ScalarType.BFloat16 => TensorElementType.BFloat16,
            _ => throw new NotSupportedException($"{qName} has dtype {dtype}; SageAttention supports Float16 and BFloat16 only."),
        };
        foreach (var (t, name) in new[] { (k, kName), (v, vName) })
        {
            if (t.dtype != dtype)
                throw new ArgumentException($"{name} has dtype {t.dtype} but {qName} has {dtype}; all inputs must share one dtype.", name);
        }

        foreach (var (t, name) in new[] { (q, qName), (k, kName), (v, vName) })
        {
            if (t.dim() != 4)
                throw new ArgumentException($"{name} must have rank 4 ({(nhd ? "[B, N, H, D]" : "[B, H, N, D]")}), got rank {t.dim()}.", name);
            if (t.shape.Any(s => s == 0))
                throw new ArgumentException($"{name} has a zero-length dimension: [{string.Join(", ", t.shape)}].", name);
            if (t.stride(3) != 1)
                throw new ArgumentException($"{name} has a non-contiguous last dimension (stride {t.stride(3)}); call .contiguous() first.", name);
        }

        var device = q.device;
        foreach (var (t, name) in new[] { (k, kName), (v, vName) })
        {
            if (t.device_type != q.device_type || t.device_index != q.device_index)
                throw new ArgumentException($"{name} is on {t.device} but {qName} is on {q.device}.", name);
        }

        if (q.device_type != DeviceType.CPU && q.device_type != DeviceType.CUDA)
            throw new NotSupportedException($"{qName} is on {q.device}; only CPU and CUDA tensors are supported.");

        var (qb, qh, qn, qd) = Dims(q, nhd);
        var (kb, kh, kn, kd) = Dims(k, nhd);
        var (vb, vh, vn, vd) = Dims(v, nhd);
        if (kb != qb || vb != qb)
            throw new ArgumentException($"batch sizes differ: {qName} {qb}, {kName} {kb}, {vName} {vb}.", kb != qb ? kName : vName);
        if (qd < 1 || qd > 128)
            throw new ArgumentException($"head_dim of {qName} must be in 1..128, got {qd}.", qName);
        if (kd != qd)
            throw new ArgumentException($"head_dim of {kName} ({kd}) must equal that of {qName} ({qd}).", kName);
        if (vd != qd)
            throw new ArgumentException($"head_dim of {vName} ({vd}) must equal that of {qName} ({qd}).", vName);
        if (vh != kh || vn != kn)
            throw new ArgumentException($"{vName} has {vh} heads and {vn} tokens, {kName} has {kh} and {kn}; they must match.", vName);
        if (qh % kh != 0)
            throw new ArgumentException($"query heads ({qh}) must be a multiple of key/value heads ({kh}) of {kName}.", kName);
        foreach (var (n, name) in new[] { (qn, qName), (kn, kName) })
        {
            // Kernels index one head with 32-bit element offsets (the padded quantized tensors included).
            if ((n + 127) / 128 * 128 * 128 > int.MaxValue || qb > int.MaxValue || qh > int.MaxValue)
                throw new ArgumentException($"{name} is too large: one head's {n} x {qd} elements (padded) exceed 32-bit indexing.", name);
        }

        double scale = smScale ?? 1.0 / Math.Sqrt(qd);
        if (!(scale > 0) || double.IsInfinity(scale) || !float.IsFinite((float)scale))
            throw new ArgumentException($"{scaleName} must be positive and finite, got {scale}.", scaleName);

        var shape = new AttentionShape((int)qb, (int)qh, (int)kh, (int)qn, (int)kn, (int)qd);
        int offset = isCausal && causalBottomRight ? Math.Max(0, shape.Nk - shape.Nq) : 0;
        return new AttentionRequest(q, k, v, nhd, elementType, dtype, device, shape, (float)scale, isCausal, offset);
    }

    /// <summary>The output's sizes in the caller's layout.</summary>
    public long[] OutputSizes => Nhd
        ? [Shape.Batch, Shape.Nq, Shape.HeadsQ, Shape.HeadDim]
        : [Shape.Batch, Shape.HeadsQ, Shape.Nq, Shape.HeadDim];

    /// <summary>(B, H, N, D) of a rank-4 tensor in the given layout.</summary>
    public static (long B, long H, long N, long D) Dims(Tensor t, bool nhd) => Dims(t.shape, nhd);

    /// <summary>(B, H, N, D) of rank-4 sizes in the given layout.</summary>
    public static (long B, long H, long N, long D) Dims(long[] sizes, bool nhd) =>
        nhd ? (sizes[0], sizes[2], sizes[1], sizes[3]) : (sizes[0], sizes[1], sizes[2], sizes[3]);

    /// <summary>(batch, head, token) element strides of a rank-4 tensor in the given layout.</summary>
    public static (long B, long H, long N) Strides(Tensor t, bool nhd) => Strides(t.stride(), nhd);

    /// <summary>(batch, head, token) of rank-4 element strides in the given layout.</summary>
    public static (long B, long H, long N) Strides(long[] strides, bool nhd) =>
        nhd ? (strides[0], strides[2], strides[1]) : (strides[0], strides[1], strides[2]);

    /// <summary>Elements from the first element to the last one reachable through the strides, plus one (any rank: the
    /// packed [T, H, D] tensors of varlen calls too).</summary>
    public static long Extent(Tensor t) => Extent(t.shape, t.stride());

    /// <summary><see cref="Extent(Tensor)"/> from sizes and strides already read (each read of a tensor's sizes is a native call).</summary>
    public static long Extent(long[] sizes, long[] strides)
    {
        long last = 0;
        for (int i = 0; i < sizes.Length; i++)
            last += (sizes[i] - 1) * strides[i];
        return last + 1;
    }
}
