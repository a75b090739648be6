using System.Diagnostics;
using SageAttn.Backend.Engine;
using static TorchSharp.torch;

namespace SageAttn.Models.Generation;

/// <summary>
/// Wraps a backend and measures the wall time of its <see cref="ForwardMixed"/> calls, synchronizing the device
/// before and after each one. For the attention-share measurement only: the synchronizations stall the pipeline, so
/// a step run through this wrapper is slower than a plain one.
/// </summary>
/// <remarks>Does not own the wrapped backend. Metadata is built by (and belongs to) the wrapped backend.</remarks>
public sealed class TimedAttentionBackend : AttentionBackend
{
    private readonly AttentionBackend _inner;
    private readonly Device _device;

    /// <summary>Times <paramref name="inner"/>'s attention on <paramref name="device"/>.</summary>
    public TimedAttentionBackend(AttentionBackend inner, Device device) : base((inner ?? throw new ArgumentNullException(nameof(inner))).Config)
    {
        ArgumentNullException.ThrowIfNull(device);
        _inner = inner;
        _device = device;
    }

    /// <inheritdoc />
    public override string Name => _inner.Name;

    /// <summary>Total time spent in <see cref="ForwardMixed"/> since the last <see cref="Reset"/>.</summary>
    public TimeSpan Elapsed { get; private set; }

    /// <summary>Calls of <see cref="ForwardMixed"/> since the last <see cref="Reset"/>.</summary>
    public int Calls { get; private set; }

    /// <summary>Clears <see cref="Elapsed"/> and <see cref="Calls"/>.</summary>
    public void Reset()
    {
        Elapsed = TimeSpan.Zero;
        Calls = 0;
    }

    /// <inheritdoc />
    public override KvCacheShape GetKvCacheShape(int maxNumBlocks) => _inner.GetKvCacheShape(maxNumBlocks);

    /// <inheritdoc />
    public override void InitAttentionMetadata(ForwardMeta meta) => _inner.InitAttentionMetadata(meta);

    /// <inheritdoc />
    public override Tensor ForwardMixed(Tensor qkv, int layer, ForwardMeta meta)
    {
        DeviceClock.Synchronize(_device);
        long start = Stopwatch.GetTimestamp();
        var output = _inner.ForwardMixed(qkv, layer, meta);
        DeviceClock.Synchronize(_device);
        Elapsed += Stopwatch.GetElapsedTime(start);
        Calls++;
        return output;
    }
}
