using SageAttn.Kernels.Host;
using SageAttn.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// Decode attention over a paged KV cache for TorchSharp tensors (FastDeploy's cache layout), in torch's naming style.
/// </summary>
/// <remarks>
/// <para>Shapes: q [B, Hq, D] (one new query token per request; any batch/head strides, channels contiguous);
/// k_cache and v_cache [num_blocks, Hkv, block_size, D] contiguous; block_tables [B, max_blocks_per_seq] Int32
/// contiguous; seq_lens [B] Int32 (valid cached tokens per request, the new token already written). Hq a multiple of
/// Hkv with Hq / Hkv ≤ 16; D 64 or 128; block_size a multiple of 16. q and the caches share one dtype, Float16 or
/// BFloat16; all tensors share one device.</para>
/// <para>Semantics: O[b, h] = softmax(q[b, h] · Kᵀ · sm_scale) V over keys 0..seq_lens[b] − 1 of request b, K/V of kv head
/// h / (Hq / Hkv). seq_lens are read on the device: values above max_seq_len are clamped to it and negative ones to 0;
/// a request with seq_len 0 gets O = 0 and LSE = −∞. Block-table entries are trusted but clamped into the cache, so
/// a bad entry reads a wrong block, never outside the cache.</para>
/// <para>CUDA tensors: driver-API launches on libtorch's current stream, the output and the split scratch from libtorch's
/// caching allocator; no copy, no synchronize. CPU tensors: the same kernels on ILGPU's CPU accelerator (copied in and
/// out; for tests and demos).</para>
/// </remarks>
public static class PagedAttention
{
    /// <summary>Paged decode attention.</summary>
    /// <param name="q">[B, Hq, D] queries.</param>
    /// <param name="k_cache">[num_blocks, Hkv, block_size, D] key cache.</param>
    /// <param name="v_cache">[num_blocks, Hkv, block_size, D] value cache.</param>
    /// <param name="block_tables">[B, max_blocks_per_seq] Int32 physical block of each logical block.</param>
    /// <param name="seq_lens">[B] Int32 valid cached tokens per request.</param>
    /// <param name="max_seq_len">The largest seq_len of the batch, known on the host (picks the key split).</param>
    /// <param name="sm_scale">Softmax scale; default 1/√D.</param>
    /// <param name="num_splits">Null picks the key split from the batch, max_seq_len and the SM count; a value forces it (tests).</param>
    /// <param name="output">Optional [B, Hq, D] tensor of q's dtype and device (any batch/head strides, channels contiguous) to
    /// write into, e.g. rows of an engine's output buffer; it is returned itself.</param>
    /// <returns>[B, Hq, D] in q's dtype and device: <paramref name="output"/> when given, else a new contiguous tensor.</returns>
    /// <exception cref="ArgumentNullException">A tensor is null.</exception>
    /// <exception cref="ArgumentException">Rank, shape, stride, dtype mismatch, device mismatch, scale or max_seq_len is invalid (ParamName names the argument).</exception>
    /// <exception cref="NotSupportedException">q's dtype is not Float16/BFloat16, the device is neither CPU nor CUDA, or the GPU is older than sm_80.</exception>
    public static Tensor decode(Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_tables, Tensor seq_lens, int max_seq_len,
        double? sm_scale = null, int? num_splits = null, Tensor? output = null) =>
        Run(q, k_cache, v_cache, block_tables, seq_lens, max_seq_len, sm_scale, num_splits, output, returnLse: false).Output;

    /// <summary><see cref="decode"/> that also returns each row's log-sum-exp of the scaled logits: Float32 [B, Hq], natural log.</summary>
    /// <inheritdoc cref="decode" path="/param"/>
    /// <inheritdoc cref="decode" path="/exception"/>
    public static (Tensor Output, Tensor Lse) decode_with_lse(Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_tables,
        Tensor seq_lens, int max_seq_len, double? sm_scale = null, int? num_splits = null, Tensor? output = null)
    {
        var (result, lse) = Run(q, k_cache, v_cache, block_tables, seq_lens, max_seq_len, sm_scale, num_splits, output, returnLse: true);
        return (result, lse!);
    }

    private static (Tensor Output, Tensor? Lse) Run(Tensor q, Tensor kCache, Tensor vCache, Tensor blockTables, Tensor seqLens,
        int maxSeqLen, double? smScale, int? numSplits, Tensor? output, bool returnLse)
    {
        var request = PagedDecodeRequest.Create(q, kCache, vCache, blockTables, seqLens, maxSeqLen, smScale, numSplits, output);
        return request.Q.device_type == DeviceType.CUDA
            ? PagedDecodeExecutor.RunCuda(request, returnLse)
            : PagedDecodeExecutor.RunCpu(request, returnLse);
    }
}

/// <summary>A validated <see cref="PagedAttention.decode"/> call.</summary>
internal sealed record PagedDecodeRequest(
    Tensor Q, Tensor KCache, Tensor VCache, Tensor BlockTables, Tensor SeqLens, PagedDecodeShape Shape,
    TensorElementType ElementType, ScalarType DType, float SmScale, int? Splits, Tensor? Output)
{
    public static PagedDecodeRequest Create(Tensor q, Tensor kCache, Tensor vCache, Tensor blockTables, Tensor seqLens,
        int maxSeqLen, double? smScale, int? numSplits, Tensor? output)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(kCache, "k_cache");
        ArgumentNullException.ThrowIfNull(vCache, "v_cache");
        ArgumentNullException.ThrowIfNull(blockTables, "block_tables");
        ArgumentNullException.ThrowIfNull(seqLens, "seq_lens");
        if (q.dim() != 3)
            throw new ArgumentException($"q must be [B, Hq, D] (rank 3), got rank {q.dim()}.", nameof(q));
        var elementType = q.dtype switch
        {
            ScalarType.Float16 => TensorElementType.Float16,
            ScalarType.BFloat16 => TensorElementType.BFloat16,
            _ => throw new NotSupportedException($"q has dtype {q.dtype}; paged decode supports Float16 and BFloat16 only."),
        };
        if (q.device_type is not (DeviceType.CPU or DeviceType.CUDA))
            throw new NotSupportedException($"q is on {q.device}; only CPU and CUDA tensors are supported.");
        if (q.stride(2) != 1)
            throw new ArgumentException($"q has a non-contiguous last dimension (stride {q.stride(2)}); call .contiguous() first.", nameof(q));
        CheckCache(kCache, "k_cache", q);
        CheckCache(vCache, "v_cache", q);
        if (!vCache.shape.SequenceEqual(kCache.shape))
            throw new ArgumentException($"v_cache is [{string.Join(", ", vCache.shape)}] but k_cache is [{string.Join(", ", kCache.shape)}].", "v_cache");
        CheckIndex(blockTables, "block_tables", 2, q);
        CheckIndex(seqLens, "seq_lens", 1, q);
        long batch = q.shape[0];
        if (blockTables.shape[0] != batch)
            throw new ArgumentException($"block_tables has {blockTables.shape[0]} rows but q has {batch} requests.", "block_tables");
        if (seqLens.shape[0] != batch)
            throw new ArgumentException($"seq_lens has {seqLens.shape[0]} entries but q has {batch} requests.", "seq_lens");
        if (kCache.shape[3] != q.shape[2])
            throw new ArgumentException($"head_dim of k_cache ({kCache.shape[3]}) must equal that of q ({q.shape[2]}).", "k_cache");
        if (numSplits is < 1)
            throw new ArgumentException($"num_splits must be ≥ 1 when given, got {numSplits}.", "num_splits");
        var shape = PagedDecodeShape.Of(ToInt(batch, "q"), ToInt(q.shape[1], "q"), ToInt(kCache.shape[1], "k_cache"), ToInt(q.shape[2], "q"),
            ToInt(kCache.shape[0], "k_cache"), ToInt(kCache.shape[2], "k_cache"), ToInt(blockTables.shape[1], "block_tables"), maxSeqLen);
        double scale = smScale ?? 1.0 / Math.Sqrt(shape.HeadDim);
        if (!(scale > 0) || double.IsInfinity(scale) || !float.IsFinite((float)scale))
            throw new ArgumentException($"sm_scale must be positive and finite, got {scale}.", "sm_scale");
        if (output is not null)
        {
            if (output.dim() != 3 || output.shape[0] != q.shape[0] || output.shape[1] != q.shape[1] || output.shape[2] != q.shape[2])
                throw new ArgumentException($"output must be [{string.Join(", ", q.shape)}] like q, got [{string.Join(", ", output.shape)}].", nameof(output));
            if (output.dtype != q.dtype)
                throw new ArgumentException($"output has dtype {output.dtype} but q has {q.dtype}.", nameof(output));
            CheckDevice(output, nameof(output), q);
            if (output.stride(2) != 1 || output.stride(0) < 0 || output.stride(1) < 0)
                throw new ArgumentException($"output needs contiguous channels and non-negative strides, got [{string.Join(", ", output.stride())}].", nameof(output));
        }
        return new PagedDecodeRequest(q, kCache, vCache, blockTables, seqLens, shape, elementType, q.dtype, (float)scale, numSplits, output);
    }

    private static void CheckCache(Tensor t, string name, Tensor q)
    {
        if (t.dim() != 4)
            throw new ArgumentException($"{name} must be [num_blocks, Hkv, block_size, D] (rank 4), got rank {t.dim()}.", name);
        if (t.dtype != q.dtype)
            throw new ArgumentException($"{name} has dtype {t.dtype} but q has {q.dtype}; they must match.", name);
        CheckDevice(t, name, q);
        if (!t.is_contiguous())
            throw new ArgumentException($"{name} must be contiguous (the paged layout is addressed by block).", name);
    }

    private static void CheckIndex(Tensor t, string name, int rank, Tensor q)
    {
        if (t.dim() != rank)
            throw new ArgumentException($"{name} must have rank {rank}, got rank {t.dim()}.", name);
        if (t.dtype != ScalarType.Int32)
            throw new ArgumentException($"{name} must be Int32, got {t.dtype}.", name);
        CheckDevice(t, name, q);
        if (!t.is_contiguous())
            throw new ArgumentException($"{name} must be contiguous.", name);
    }

    private static void CheckDevice(Tensor t, string name, Tensor q)
    {
        if (t.device_type != q.device_type || (t.device_type == DeviceType.CUDA && t.device_index != q.device_index))
            throw new ArgumentException($"{name} is on {t.device} but q is on {q.device}.", name);
    }

    private static int ToInt(long value, string name) =>
        value <= int.MaxValue ? (int)value : throw new ArgumentException($"size {value} of {name} exceeds 32-bit range.", name);
}
