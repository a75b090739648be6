using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Generation;

/// <summary>Wall-clock timing of device work: synchronizes a CUDA device before reading the clock (CPU work is synchronous).</summary>
public static class DeviceClock
{
    /// <summary>Waits until <paramref name="device"/> has finished its queued work (no-op on the CPU).</summary>
    public static void Synchronize(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.type == DeviceType.CUDA)
            torch.cuda.synchronize(device);
    }

    /// <summary>Runs <paramref name="work"/> between two synchronizations of <paramref name="device"/> and returns its wall time in milliseconds.</summary>
    public static double Milliseconds(Device device, Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        Synchronize(device);
        long start = Stopwatch.GetTimestamp();
        work();
        Synchronize(device);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
