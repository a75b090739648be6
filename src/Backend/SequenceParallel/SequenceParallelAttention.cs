using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.SequenceParallel;

/// <summary>
/// Sage attention of one long sequence split across several devices (or several chunks of one device): ring
/// attention. Each partition attends its query chunks to every partition's keys/values as they travel around the
/// ring, and the partial outputs are merged exactly from their log-sum-exp.
/// </summary>
/// <remarks>
/// <para>Why: a 128K-token prefill is N² work; splitting the queries over P GPUs divides the time by about P while
/// each GPU only ever holds two key/value chunks. TorchSharp has no collective library, so the ring passes chunks with
/// device-to-device copies (<c>Tensor.to(device)</c>: a peer copy that libtorch orders on both devices' current
/// streams). The host only enqueues work: nothing here synchronizes, so all devices compute at once.</para>
/// <para>The split is <see cref="SequencePartition"/>'s (zigzag when causal, for balance). Each (query chunk, key
/// chunk) pair is one <see cref="SageAttention.sageattn_with_lse"/> call, so K smoothing and the V scales are per
/// chunk — as exact as the unsplit kernel, not bit-identical to it.</para>
/// <para>Devices may repeat: <c>[cuda:0, cuda:0]</c> runs two partitions on one GPU (a test of the split and merge
/// on one card), <c>[cpu, cpu, cpu]</c> runs them on the CPU accelerator.</para>
/// </remarks>
public static class SequenceParallelAttention
{
    /// <summary>Self-attention of q over k/v (same token count) split across <paramref name="devices"/>.</summary>
    /// <param name="q">Queries [B, Hq, N, D] (HND) or [B, N, Hq, D] (NHD), on any device.</param>
    /// <param name="k">Keys with the same N and layout, Hkv heads (Hq a multiple of Hkv).</param>
    /// <param name="v">Values, same shape as <paramref name="k"/>.</param>
    /// <param name="devices">One device per partition (CPU or CUDA; repeats allowed).</param>
    /// <param name="tensor_layout">"HND" or "NHD".</param>
    /// <param name="is_causal">Causal mask (query i sees keys ≤ i).</param>
    /// <param name="sm_scale">Softmax scale; default 1/√D.</param>
    /// <param name="options">Kernel settings, as for <see cref="SageAttention.sageattn"/>.</param>
    /// <returns>The output on q's device, in q's layout and dtype.</returns>
    /// <exception cref="ArgumentException">An argument is invalid (names it).</exception>
    public static Tensor sageattn_sequence_parallel(Tensor q, Tensor k, Tensor v, IReadOnlyList<Device> devices,
        string tensor_layout = "HND", bool is_causal = false, double? sm_scale = null, SageAttentionSettings? options = null)
    {
        var (output, lse) = sageattn_sequence_parallel_with_lse(q, k, v, devices, tensor_layout, is_causal, sm_scale, options);
        lse.Dispose();
        return output;
    }

    /// <summary><see cref="sageattn_sequence_parallel"/> that also returns the merged natural-log LSE, FP32 [B, Hq, N].</summary>
    /// <inheritdoc cref="sageattn_sequence_parallel" path="/param"/>
    /// <inheritdoc cref="sageattn_sequence_parallel" path="/exception"/>
    public static (Tensor Output, Tensor Lse) sageattn_sequence_parallel_with_lse(Tensor q, Tensor k, Tensor v,
        IReadOnlyList<Device> devices, string tensor_layout = "HND", bool is_causal = false, double? sm_scale = null,
        SageAttentionSettings? options = null)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(devices);
        if (devices.Count == 0)
            throw new ArgumentException("devices must name at least one device.", nameof(devices));
        for (int i = 0; i < devices.Count; i++)
        {
            if (devices[i] is null || (devices[i].type != DeviceType.CPU && devices[i].type != DeviceType.CUDA))
                throw new ArgumentException($"devices[{i}] must be a CPU or CUDA device.", nameof(devices));
        }
        bool nhd = tensor_layout switch
        {
            "HND" => false,
            "NHD" => true,
            _ => throw new ArgumentException($"tensor_layout must be \"HND\" or \"NHD\", got \"{tensor_layout}\".", nameof(tensor_layout)),
        };
        foreach (var (t, name) in new[] { (q, nameof(q)), (k, nameof(k)), (v, nameof(v)) })
        {
            if (t.dim() != 4)
                throw new ArgumentException($"{name} must be rank 4 ({tensor_layout}), got rank {t.dim()}.", name);
        }
        int tokenDim = nhd ? 1 : 2;
        long n = q.shape[tokenDim];
        if (k.shape[tokenDim] != n || v.shape[tokenDim] != n)
            throw new ArgumentException(
                $"sequence-parallel attention is self-attention: q, k and v need the same token count, got {n}, {k.shape[tokenDim]}, {v.shape[tokenDim]}.",
                nameof(k));
        if (n > int.MaxValue)
            throw new ArgumentException($"too many tokens ({n}).", nameof(q));

        var plan = SequencePartition.Create((int)n, devices.Count, is_causal);
        var home = q.device;
        var dtype = q.dtype;

        // Scatter: each partition receives its own chunks' queries, keys and values.
        var queries = new Tensor[plan.Chunks];
        var keys = new Tensor[plan.Chunks];
        var values = new Tensor[plan.Chunks];
        var accumulators = new AttentionStateAccumulator[plan.Chunks];
        var held = new List<int>[plan.Partitions];
        var received = new List<Tensor>();
        try
        {
            for (int p = 0; p < plan.Partitions; p++)
            {
                foreach (int c in plan.OwnedChunks(p))
                {
                    queries[c] = ChunkOn(q, tokenDim, plan, c, devices[p]);
                    keys[c] = ChunkOn(k, tokenDim, plan, c, devices[p]);
                    values[c] = ChunkOn(v, tokenDim, plan, c, devices[p]);
                    accumulators[c] = new AttentionStateAccumulator(tensor_layout);
                }
                held[p] = [.. plan.OwnedChunks(p)];
            }

            var keysHeld = new Tensor[plan.Partitions][];
            var valuesHeld = new Tensor[plan.Partitions][];
            for (int p = 0; p < plan.Partitions; p++)
            {
                keysHeld[p] = [.. held[p].Select(c => keys[c])];
                valuesHeld[p] = [.. held[p].Select(c => values[c])];
            }

            for (int step = 0; step < plan.Partitions; step++)
            {
                if (step > 0)
                {
                    // Ring pass: partition p receives what its neighbour p + 1 held in the previous step.
                    var nextKeys = new Tensor[plan.Partitions][];
                    var nextValues = new Tensor[plan.Partitions][];
                    var arriving = new List<Tensor>();
                    for (int p = 0; p < plan.Partitions; p++)
                    {
                        int from = (p + 1) % plan.Partitions;
                        nextKeys[p] = [.. keysHeld[from].Select(t => Receive(t, devices[p], arriving))];
                        nextValues[p] = [.. valuesHeld[from].Select(t => Receive(t, devices[p], arriving))];
                    }
                    // The previous step's received chunks are no longer held: libtorch orders their reuse after the
                    // copies and kernels already enqueued on them, so they can go now (two chunks per device stay alive).
                    foreach (var t in received)
                        t.Dispose();
                    received = arriving;
                    for (int p = 0; p < plan.Partitions; p++)
                        held[p] = [.. plan.OwnedChunks(plan.KeySourceAt(p, step))];
                    keysHeld = nextKeys;
                    valuesHeld = nextValues;
                }

                for (int p = 0; p < plan.Partitions; p++)
                {
                    foreach (int a in plan.OwnedChunks(p))
                    {
                        for (int i = 0; i < held[p].Count; i++)
                        {
                            var visibility = plan.Visibility(a, held[p][i]);
                            if (visibility == ChunkVisibility.None)
                                continue;
                            var (o, l) = SageAttention.sageattn_with_lse(queries[a], keysHeld[p][i], valuesHeld[p][i], tensor_layout,
                                is_causal: visibility == ChunkVisibility.Diagonal, sm_scale, options);
                            using (o)
                            using (l)
                                accumulators[a].Add(o, l);
                        }
                    }
                }
            }

            // Gather on q's device in token order.
            var outputs = new Tensor[plan.Chunks];
            var lses = new Tensor[plan.Chunks];
            for (int c = 0; c < plan.Chunks; c++)
            {
                var (o, l) = accumulators[c].Finish(dtype);
                outputs[c] = MoveTo(o, home);
                lses[c] = MoveTo(l, home);
            }
            var output = torch.cat(outputs, tokenDim);
            var lse = torch.cat(lses, 2);
            foreach (var t in outputs.Concat(lses))
                t.Dispose();
            return (output, lse);
        }
        finally
        {
            foreach (var t in queries.Concat(keys).Concat(values).Concat(received))
                t?.Dispose();
            foreach (var a in accumulators)
                a?.Dispose();
        }
    }

    private static Tensor ChunkOn(Tensor t, int tokenDim, SequencePartition plan, int chunk, Device device)
    {
        using var view = t.narrow(tokenDim, plan.ChunkStarts[chunk], plan.ChunkLength(chunk));
        return TorchInterop.SameDevice(view.device, device) ? view.alias() : view.to(device);
    }

    private static Tensor Receive(Tensor t, Device device, List<Tensor> copies)
    {
        if (TorchInterop.SameDevice(t.device, device))
            return t;
        var copy = t.to(device);
        copies.Add(copy);
        return copy;
    }

    private static Tensor MoveTo(Tensor t, Device device)
    {
        if (TorchInterop.SameDevice(t.device, device))
            return t;
        var moved = t.to(device);
        t.Dispose();
        return moved;
    }
}
