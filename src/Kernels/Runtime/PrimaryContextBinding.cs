namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Makes a device's primary context current for a block of driver calls and restores the previous
/// context afterwards, so launches for cuda:1 work while libtorch left cuda:0's context current.
/// </summary>
/// <remarks>
/// libtorch (through the CUDA runtime) uses each device's primary context; the retain is never released
/// because the cached modules live in that context for the rest of the process.
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

    /// <summary>Binds the primary context of <paramref name="ordinal"/> unless a context of that device is already current.</summary>
    public static PrimaryContextBinding Bind(int ordinal)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        var current = CudaDriver.GetCurrentContext();
        if (current != IntPtr.Zero && CudaDriver.CurrentDevice() == ordinal)
        {
            return new PrimaryContextBinding(current, switched: false);
        }

        CudaDriver.Check(CudaNative.cuDeviceGet(out int device, ordinal), $"getting device {ordinal}");
        CudaDriver.Check(CudaNative.cuDevicePrimaryCtxRetain(out var primary, device), $"retaining the primary context of device {ordinal}");
        CudaDriver.Check(CudaNative.cuCtxSetCurrent(primary), $"making the primary context of device {ordinal} current");
        return new PrimaryContextBinding(current, switched: true);
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
