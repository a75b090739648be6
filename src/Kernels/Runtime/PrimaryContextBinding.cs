using System.Collections.Concurrent;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Makes a device's primary context current for a block of driver calls and restores the previous
/// context afterwards, so launches for cuda:1 work while libtorch left cuda:0's context current.
/// </summary>
/// <remarks>
/// libtorch (through the CUDA runtime) uses each device's primary context; the retain is never released
/// because the cached modules live in that context for the rest of the process. Another context of the same device
/// (ILGPU's CUDA accelerator creates its own) is not good enough: a launch there on stream 0 runs on that context's
/// default stream, unordered with libtorch's work, and scratch that libtorch recycles could be written after it was
/// handed to another tensor.
/// </remarks>
public readonly struct PrimaryContextBinding : IDisposable
{
    private readonly IntPtr _previous;
    private readonly bool _switched;

    private PrimaryContextBinding(IntPtr previous, bool switched)
    {
        _previous = previous;
        _switched = switched;
    }

    /// <summary>Primary contexts retained so far, by device ordinal (one retain per device per process).</summary>
    private static readonly ConcurrentDictionary<int, IntPtr> Primaries = new();

    /// <summary>Binds the primary context of <paramref name="ordinal"/> unless it is already the current context.</summary>
    public static PrimaryContextBinding Bind(int ordinal)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        var primary = Primaries.GetOrAdd(ordinal, Retain);
        var current = CudaDriver.GetCurrentContext();
        if (current == primary)
        {
            return new PrimaryContextBinding(current, switched: false);
        }

        CudaDriver.Check(CudaNative.cuCtxSetCurrent(primary), $"making the primary context of device {ordinal} current");
        return new PrimaryContextBinding(current, switched: true);
    }

    private static IntPtr Retain(int ordinal)
    {
        CudaDriver.Initialize();
        CudaDriver.Check(CudaNative.cuDeviceGet(out int device, ordinal), $"getting device {ordinal}");
        CudaDriver.Check(CudaNative.cuDevicePrimaryCtxRetain(out var primary, device), $"retaining the primary context of device {ordinal}");
        return primary;
    }

    /// <summary>Restores the context that was current before <see cref="Bind"/> (if it changed it).</summary>
    public void Dispose()
    {
        if (_switched)
        {
            CudaDriver.Check(CudaNative.cuCtxSetCurrent(_previous), "restoring the previous CUDA context");
        }
    }
}
