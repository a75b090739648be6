namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Measures GPU time between two points of a stream with a pair of CUDA events (for benchmarks):
/// <see cref="Start"/>, enqueue work, <see cref="Stop"/>, then <see cref="ElapsedMilliseconds"/>.
/// </summary>
public sealed class CudaEventTimer : IDisposable
{
    private IntPtr _start;
    private IntPtr _end;
    private IntPtr _stream;

    /// <summary>Creates the two events in the current context.</summary>
    public CudaEventTimer()
    {
        CudaDriver.Initialize();
        CudaDriver.Check(CudaNative.cuEventCreate(out _start, 0), "creating the start event");
        CudaDriver.Check(CudaNative.cuEventCreate(out _end, 0), "creating the end event");
    }

    /// <summary>Records the start event on <paramref name="stream"/> (0 = legacy default stream).</summary>
    public void Start(IntPtr stream)
    {
        _stream = stream;
        CudaDriver.Check(CudaNative.cuEventRecord(_start, stream), $"recording the start event on stream 0x{stream:x}");
    }

    /// <summary>Records the end event on the stream given to <see cref="Start"/>.</summary>
    public void Stop() =>
        CudaDriver.Check(CudaNative.cuEventRecord(_end, _stream), $"recording the end event on stream 0x{_stream:x}");

    /// <summary>Waits for the end event and returns the GPU time between the two events.</summary>
    public float ElapsedMilliseconds()
    {
        CudaDriver.Check(CudaNative.cuEventSynchronize(_end), "waiting for the end event");
        CudaDriver.Check(CudaNative.cuEventElapsedTime(out float ms, _start, _end), "reading the elapsed event time");
        return ms;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_start != IntPtr.Zero)
        {
            CudaNative.cuEventDestroy(_start);
            _start = IntPtr.Zero;
        }

        if (_end != IntPtr.Zero)
        {
            CudaNative.cuEventDestroy(_end);
            _end = IntPtr.Zero;
        }
    }
}
