using SageAttn.Kernels.Host;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend;

/// <summary>
/// Merges attention computed over disjoint key chunks into the attention over all keys, exactly, from each chunk's
/// output and log-sum-exp (the online-softmax combination) — the building block of sequence-parallel attention.
/// </summary>
public static class AttentionMerge
{
    /// <summary>
    /// O = Σₛ exp(LSEₛ − LSE) · Oₛ with LSE = ln Σₛ exp(LSEₛ): merges the partial results of attention calls over key
    /// chunks of the same queries (e.g. <see cref="SageAttention.sageattn_with_lse"/> on each chunk).
    /// </summary>
    /// <param name="outputs">S ≥ 1 partial outputs, each [B, H, N, D] (HND) or [B, N, H, D] (NHD), all alike: Float16,
    /// BFloat16 or Float32, one device (CPU or CUDA).</param>
    /// <param name="lses">S LSEs, Float32 [B, H, N] natural log (as sageattn_with_lse returns them), same device. −∞ marks an
    /// empty chunk: its output is ignored (may be anything). A row whose chunks are all empty merges to O = 0, LSE = −∞.</param>
    /// <param name="tensor_layout">"HND" or "NHD", the layout of <paramref name="outputs"/> and of the result.</param>
    /// <returns>The merged output (contiguous, the partials' layout, dtype and device) and its LSE (Float32 [B, H, N]).</returns>
    /// <remarks>The partials are stacked into one [S, ...] tensor first (one device copy); on CUDA everything is enqueued on
    /// libtorch's current stream with no synchronize.</remarks>
    /// <exception cref="ArgumentNullException">A list or tensor is null.</exception>
    /// <exception cref="ArgumentException">Counts, ranks, shapes, dtypes, devices or the layout string are inconsistent (ParamName names the argument).</exception>
    /// <exception cref="NotSupportedException">An unsupported dtype or device.</exception>
    public static (Tensor Output, Tensor Lse) merge_attention_states(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor> lses,
        string tensor_layout = "HND")
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(lses);
        bool nhd = tensor_layout switch
        {
            "HND" => false,
            "NHD" => true,
            _ => throw new ArgumentException($"tensor_layout must be \"HND\" or \"NHD\", got \"{tensor_layout}\".", nameof(tensor_layout)),
        };
        if (outputs.Count == 0)
            throw new ArgumentException("at least one partial output is needed.", nameof(outputs));
        if (lses.Count != outputs.Count)
            throw new ArgumentException($"{outputs.Count} outputs but {lses.Count} LSEs.", nameof(lses));
        var first = outputs[0] ?? throw new ArgumentNullException(nameof(outputs), "outputs[0] is null.");
        if (first.dim() != 4)
            throw new ArgumentException($"outputs must have rank 4, got rank {first.dim()}.", nameof(outputs));
        if (first.dtype is not (ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32))
            throw new NotSupportedException($"outputs have dtype {first.dtype}; Float16, BFloat16 or Float32 are supported.");
        if (first.device_type is not (DeviceType.CPU or DeviceType.CUDA))
            throw new NotSupportedException($"outputs are on {first.device}; only CPU and CUDA tensors are supported.");
        long b = first.shape[0], h = nhd ? first.shape[2] : first.shape[1], n = nhd ? first.shape[1] : first.shape[2], d = first.shape[3];
        if (b * h * n * d == 0)
            throw new ArgumentException($"outputs have a zero-length dimension: [{string.Join(", ", first.shape)}].", nameof(outputs));
        for (int s = 0; s < outputs.Count; s++)
        {
            var o = outputs[s] ?? throw new ArgumentNullException(nameof(outputs), $"outputs[{s}] is null.");
            var l = lses[s] ?? throw new ArgumentNullException(nameof(lses), $"lses[{s}] is null.");
            if (!o.shape.SequenceEqual(first.shape) || o.dtype != first.dtype || !TorchInterop.SameDevice(o.device, first.device))
                throw new ArgumentException(
                    $"outputs[{s}] is {o.dtype} [{string.Join(", ", o.shape)}] on {o.device}; outputs[0] is {first.dtype} [{string.Join(", ", first.shape)}] on {first.device}.",
                    nameof(outputs));
            if (l.dtype != ScalarType.Float32 || l.dim() != 3 || l.shape[0] != b || l.shape[1] != h || l.shape[2] != n || !TorchInterop.SameDevice(l.device, first.device))
                throw new ArgumentException(
                    $"lses[{s}] must be Float32 [{b}, {h}, {n}] on {first.device}, got {l.dtype} [{string.Join(", ", l.shape)}] on {l.device}.", nameof(lses));
        }

        int splits = outputs.Count;
        using var partials = torch.stack(outputs.ToArray()).contiguous();
        using var partialLse = torch.stack(lses.ToArray()).contiguous();
        var output = torch.empty(first.shape, first.dtype, first.device);
        var lse = torch.empty([b, h, n], ScalarType.Float32, first.device);
        long one = b * h * n * d;
        long strideB = h * n * d, strideH = nhd ? d : n * d, strideN = nhd ? h * d : d;
        var layout = new AttentionStateLayout(splits, (int)b, (int)h, (int)n, (int)d, one, strideB, strideH, strideN, strideB, strideH, strideN);
        if (first.device_type == DeviceType.CUDA)
            PagedDecodeExecutor.MergeCuda(layout, partials, partialLse, output, lse);
        else
            PagedDecodeExecutor.MergeCpu(layout, partials, partialLse, output, lse);
        return (output, lse);
    }
}
