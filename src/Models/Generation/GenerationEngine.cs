using System.Diagnostics;
using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Generation;

/// <summary>
/// A minimal engine loop over a paged KV cache: prefill a batch of prompts in one step, then greedy-decode all
/// requests together, one token each per step. Every step builds a <see cref="ForwardMeta"/>, calls the backend's
/// <see cref="AttentionBackend.InitAttentionMetadata"/> once, and runs the model's layers.
/// </summary>
/// <remarks>
/// <para>Owns the KV cache, the rotary table and the backend (disposed with the engine); not the model.</para>
/// <para>Between steps only host-known lengths are needed, and each step's greedy tokens stay on the device as the
/// next step's input, so the decode loop never waits for the device. Timing synchronizes once before and once after
/// <see cref="Prefill"/> / <see cref="Decode"/>; with <see cref="MeasureAttention"/> it also synchronizes around
/// every attention call (a separate, slower measurement pass).</para>
/// </remarks>
public sealed class GenerationEngine : IDisposable
{
    private readonly RotaryTable _rope;
    private readonly TimedAttentionBackend _timed;
    private int[] _lengths = [];
    private Tensor? _nextTokens;

    /// <summary>
    /// An engine for <paramref name="model"/> with <paramref name="backend"/> (made from
    /// <see cref="DecoderModel.BackendConfig"/>), caching up to <paramref name="maxBatch"/> requests of up to
    /// <paramref name="maxSequenceLength"/> tokens (prompt + generated).
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The backend's shape, RoPE or dtype does not match the model (ParamName "backend"), or a size is not positive or
    /// past the backend's MaxPositions.
    /// </exception>
    public GenerationEngine(DecoderModel model, AttentionBackend backend, int maxBatch, int maxSequenceLength)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(backend);
        if (maxBatch <= 0)
            throw new ArgumentException($"maxBatch must be positive, got {maxBatch}.", nameof(maxBatch));
        var config = backend.Config;
        if (maxSequenceLength <= 0 || maxSequenceLength > config.MaxPositions)
            throw new ArgumentException($"maxSequenceLength must be in 1..{config.MaxPositions} (the backend's MaxPositions), got {maxSequenceLength}.", nameof(maxSequenceLength));
        var expected = model.BackendConfig(config.MaxPositions, config.BlockSize, config.Sage);
        if (config with { SmScale = null } != expected)
            throw new ArgumentException($"the backend's config {config} does not match the model's {expected}.", nameof(backend));
        Model = model;
        Backend = backend;
        Device = model.Device;
        int blocksPerRequest = (maxSequenceLength + config.BlockSize - 1) / config.BlockSize;
        Cache = new PagedKvCache(backend, checked(maxBatch * blocksPerRequest), Device);
        _rope = new RotaryTable(config.HeadDim, maxSequenceLength, config.RopeTheta, Device);
        _timed = new TimedAttentionBackend(backend, Device);
        MaxBatch = maxBatch;
        MaxSequenceLength = maxSequenceLength;
    }

    /// <summary>The model (not owned).</summary>
    public DecoderModel Model { get; }

    /// <summary>The attention backend (owned).</summary>
    public AttentionBackend Backend { get; }

    /// <summary>The paged KV cache (owned).</summary>
    public PagedKvCache Cache { get; }

    /// <summary>The model's device.</summary>
    public Device Device { get; }

    /// <summary>Most requests in one batch.</summary>
    public int MaxBatch { get; }

    /// <summary>Most tokens (prompt + generated) of one request.</summary>
    public int MaxSequenceLength { get; }

    /// <summary>
    /// When true, every attention call is bracketed by device synchronizations and timed, and the results carry
    /// <c>AttentionMilliseconds</c>. Off by default: it slows the step down.
    /// </summary>
    public bool MeasureAttention { get; set; }

    /// <summary>Tokens each request of the current batch holds (prompt + generated so far).</summary>
    public IReadOnlyList<int> Lengths => _lengths;

    /// <summary>
    /// Starts a new batch (freeing the previous one's cache blocks): runs all prompts' tokens through the model in
    /// one step and picks each request's greedy next token from its last prompt token's logits.
    /// </summary>
    /// <param name="prompts">Token ids per request (each non-empty, ids in 0..vocab − 1).</param>
    /// <param name="keepLogits">Copy each request's last-token logits to the host (a [vocab] float array each).</param>
    /// <exception cref="ArgumentException">No prompts, more than <see cref="MaxBatch"/>, an empty or too long prompt, or an id outside the vocabulary (ParamName "prompts").</exception>
    public PrefillResult Prefill(IReadOnlyList<int[]> prompts, bool keepLogits = true)
    {
        ValidatePrompts(prompts);
        Release();
        var slots = prompts.Select((p, i) => new RequestSlot(i, 0, p.Length)).ToArray();
        long[] ids = prompts.SelectMany(p => p.Select(t => (long)t)).ToArray();
        _timed.Reset();
        Tensor? logits = null;
        double ms;
        using (var scope = torch.NewDisposeScope())
        {
            using var idsHost = torch.tensor(ids, ScalarType.Int64);
            var idsDevice = idsHost.to(Device);
            DeviceClock.Synchronize(Device);
            long start = Stopwatch.GetTimestamp();
            var (next, stepLogits) = Step(slots, idsDevice, lastRowsOnly: true);
            DeviceClock.Synchronize(Device);
            ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            _nextTokens = next.DetachFromDisposeScope();
            if (keepLogits)
                logits = stepLogits.DetachFromDisposeScope();
        }

        _lengths = prompts.Select(p => p.Length).ToArray();
        using (logits)
        {
            return new PrefillResult(ToHost(_nextTokens), logits is null ? null : Rows(logits), ids.Length, ms,
                MeasureAttention ? _timed.Elapsed.TotalMilliseconds : null);
        }
    }

    /// <summary>
    /// Greedy-decodes <paramref name="steps"/> tokens for every request of the batch <see cref="Prefill"/> started,
    /// all requests in one step per token.
    /// </summary>
    /// <param name="steps">Tokens to generate per request (≥ 1).</param>
    /// <param name="keepLogits">Copy every step's logits to the host ([step][request][vocab] floats).</param>
    /// <param name="forcedInputs">
    /// Teacher forcing: per request, the token to feed at each step (at least <paramref name="steps"/> ids) instead of
    /// the previous greedy choice (step 0 normally feeds the prefill's choice). The result still reports each step's
    /// greedy choice. Used to compare two backends step by step on the same history.
    /// </param>
    /// <exception cref="InvalidOperationException">No batch was prefilled.</exception>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is not positive or would pass <see cref="MaxSequenceLength"/>, or <paramref name="forcedInputs"/> does not give every request <paramref name="steps"/> ids of the vocabulary.</exception>
    public DecodeResult Decode(int steps, bool keepLogits = false, IReadOnlyList<int[]>? forcedInputs = null)
    {
        if (_nextTokens is null)
            throw new InvalidOperationException("call Prefill before Decode.");
        int longest = _lengths.Max();
        if (steps <= 0 || (long)longest + steps > MaxSequenceLength)
            throw new ArgumentException($"steps must be in 1..{MaxSequenceLength - longest} (the longest request holds {longest} of {MaxSequenceLength} tokens), got {steps}.", nameof(steps));
        int batch = _lengths.Length;
        if (forcedInputs is not null)
            ValidateForced(forcedInputs, batch, steps);
        _timed.Reset();
        using var tokens = torch.empty([steps, batch], ScalarType.Int64, Device);
        // [steps, batch] on the device, uploaded once: the loop never waits for a host copy.
        using var forcedHost = forcedInputs is null ? null
            : torch.tensor(Enumerable.Range(0, steps).SelectMany(s => forcedInputs.Select(f => (long)f[s])).ToArray(), [steps, batch], ScalarType.Int64);
        using var forced = forcedHost?.to(Device);
        var kept = new List<Tensor>();
        try
        {
            DeviceClock.Synchronize(Device);
            long start = Stopwatch.GetTimestamp();
            for (int s = 0; s < steps; s++)
            {
                using var scope = torch.NewDisposeScope();
                var slots = _lengths.Select((length, i) => new RequestSlot(i, length, 1)).ToArray();
                var (next, logits) = Step(slots, forced is null ? _nextTokens : forced[s], lastRowsOnly: false);
                tokens[s].copy_(next);
                if (keepLogits)
                    kept.Add(logits.DetachFromDisposeScope());
                _nextTokens.Dispose();
                _nextTokens = next.DetachFromDisposeScope();
                for (int i = 0; i < batch; i++)
                    _lengths[i]++;
            }

            DeviceClock.Synchronize(Device);
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            using var tokensHost = tokens.t().contiguous().cpu();
            var flat = tokensHost.data<long>().ToArray();
            var perRequest = Enumerable.Range(0, batch).Select(b => flat.Skip(b * steps).Take(steps).Select(t => (int)t).ToArray()).ToArray();
            return new DecodeResult(perRequest, keepLogits ? kept.Select(Rows).ToArray() : null, steps, ms,
                MeasureAttention ? _timed.Elapsed.TotalMilliseconds : null);
        }
        finally
        {
            foreach (var t in kept)
                t.Dispose();
        }
    }

    /// <summary>Frees the current batch's cache blocks.</summary>
    public void Release()
    {
        foreach (var id in Cache.Allocator.Requests.ToArray())
            Cache.Free(id);
        _nextTokens?.Dispose();
        _nextTokens = null;
        _lengths = [];
    }

    /// <summary>Releases the cache, the rotary table, the pending tokens and the backend.</summary>
    public void Dispose()
    {
        Release();
        Cache.Dispose();
        _rope.Dispose();
        _timed.Dispose();
        Backend.Dispose();
    }

    /// <summary>
    /// One engine step: metadata, the model, logits of each request's last new token, greedy choice. Returns the
    /// chosen tokens (int64 [B]) and their logits (float32 [B, vocab]) in the caller's dispose scope.
    /// </summary>
    private (Tensor Next, Tensor Logits) Step(RequestSlot[] slots, Tensor tokenIds, bool lastRowsOnly)
    {
        using var meta = ForwardMeta.Create(slots, Cache, _rope);
        Backend.InitAttentionMetadata(meta);
        using var hidden = Model.Forward(tokenIds, MeasureAttention ? _timed : Backend, meta);
        // The last new token of request b is row QueryStarts[b + 1] − 1 (all rows when every request decodes one token).
        var lastRows = lastRowsOnly
            ? torch.tensor(meta.QueryStarts.Skip(1).Select(s => (long)s - 1).ToArray(), ScalarType.Int64).to(Device)
            : torch.arange(meta.TotalTokens, ScalarType.Int64, Device);
        var logits = Model.Logits(hidden, lastRows);
        return (logits.argmax(1), logits);
    }

    private void ValidatePrompts(IReadOnlyList<int[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0 || prompts.Count > MaxBatch)
            throw new ArgumentException($"give 1..{MaxBatch} prompts (the engine's maxBatch), got {prompts.Count}.", nameof(prompts));
        int vocab = Model.Config.VocabSize;
        for (int i = 0; i < prompts.Count; i++)
        {
            var prompt = prompts[i] ?? throw new ArgumentException($"prompt {i} is null.", nameof(prompts));
            if (prompt.Length == 0 || prompt.Length >= MaxSequenceLength)
                throw new ArgumentException($"prompt {i} has {prompt.Length} tokens; it must have 1..{MaxSequenceLength - 1} (room for a generated token).", nameof(prompts));
            int bad = Array.FindIndex(prompt, t => t < 0 || t >= vocab);
            if (bad >= 0)
                throw new ArgumentException($"prompt {i} has token id {prompt[bad]} at {bad}, outside the vocabulary 0..{vocab - 1}.", nameof(prompts));
        }
    }

    private void ValidateForced(IReadOnlyList<int[]> forcedInputs, int batch, int steps)
    {
        if (forcedInputs.Count != batch)
            throw new ArgumentException($"forcedInputs must give {batch} requests their tokens, got {forcedInputs.Count}.", nameof(forcedInputs));
        int vocab = Model.Config.VocabSize;
        for (int i = 0; i < batch; i++)
        {
            if (forcedInputs[i] is not { } f || f.Length < steps || f.Take(steps).Any(t => t < 0 || t >= vocab))
                throw new ArgumentException($"forcedInputs[{i}] must hold at least {steps} token ids in 0..{vocab - 1}.", nameof(forcedInputs));
        }
    }

    private static int[] ToHost(Tensor tokens)
    {
        using var host = tokens.cpu();
        return host.data<long>().Select(t => (int)t).ToArray();
    }

    private static float[][] Rows(Tensor logits)
    {
        using var host = logits.cpu();
        long vocab = host.shape[1];
        var flat = host.data<float>().ToArray();
        return Enumerable.Range(0, (int)host.shape[0]).Select(b => flat.AsSpan((int)(b * vocab), (int)vocab).ToArray()).ToArray();
    }
}
