using SageAttn.Kernels.Runtime;

namespace SageAttn.Kernels.Host;

/// <summary>
/// Caller-owned device buffers the driver path quantizes into (<see cref="CudaSageAttention"/>). Each
/// view's length counts elements of that buffer's type: bytes for Q and K, 32-bit words for V, floats
/// for scales, means and statistics, ints for the coordination buffer.
/// </summary>
/// <remarks>
/// Why caller-owned: the TorchSharp backend allocates them as torch tensors so libtorch's caching
/// allocator recycles them, and frees them right after the launches are enqueued on the same stream.
/// </remarks>
public sealed record QuantizedScratch(
    DeviceView Q, DeviceView QScale, DeviceView K, DeviceView KScale, DeviceView V,
    DeviceView VScale, DeviceView VMean, DeviceView KStats, DeviceView VStats, DeviceView Coordination)
{
    /// <summary>
    /// Builds the scratch set by asking <paramref name="allocate"/> for each buffer's bytes (in
    /// <see cref="QuantizedLayout.ScratchBytes"/> order) and wrapping the returned device addresses.
    /// </summary>
    /// <param name="layout">The sizes.</param>
    /// <param name="allocate">Returns a device address of at least the requested bytes, aligned to 16.</param>
    public static QuantizedScratch Allocate(QuantizedLayout layout, Func<string, long, IntPtr> allocate)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(allocate);
        IntPtr Get(string name, long bytes) => allocate(name, bytes);
        return new QuantizedScratch(
            new DeviceView(Get(nameof(Q), layout.QBytes), layout.QBytes),
            new DeviceView(Get(nameof(QScale), layout.QScales * sizeof(float)), layout.QScales),
            new DeviceView(Get(nameof(K), layout.KBytes), layout.KBytes),
            new DeviceView(Get(nameof(KScale), layout.KScales * sizeof(float)), layout.KScales),
            new DeviceView(Get(nameof(V), layout.VWords * sizeof(uint)), layout.VWords),
            new DeviceView(Get(nameof(VScale), layout.VScales * sizeof(float)), layout.VScales),
            new DeviceView(Get(nameof(VMean), layout.VMeans * sizeof(float)), layout.VMeans),
            new DeviceView(Get(nameof(KStats), layout.KStats * sizeof(float)), layout.KStats),
            new DeviceView(Get(nameof(VStats), layout.VStats * sizeof(float)), layout.VStats),
            new DeviceView(Get(nameof(Coordination), layout.Coordination * sizeof(int)), layout.Coordination));
    }

    /// <summary>Throws when a buffer is missing or shorter than <paramref name="layout"/> needs.</summary>
    /// <exception cref="ArgumentException">Names the buffer.</exception>
    public void Check(QuantizedLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        Need(Q, layout.QBytes, nameof(Q));
        Need(QScale, layout.QScales, nameof(QScale));
        Need(K, layout.KBytes, nameof(K));
        Need(KScale, layout.KScales, nameof(KScale));
        Need(V, layout.VWords, nameof(V));
        Need(VScale, layout.VScales, nameof(VScale));
        Need(VMean, layout.VMeans, nameof(VMean));
        Need(KStats, layout.KStats, nameof(KStats));
        Need(VStats, layout.VStats, nameof(VStats));
        Need(Coordination, layout.Coordination, nameof(Coordination));
    }

    private static void Need(DeviceView view, long elements, string name)
    {
        if (view.Pointer == IntPtr.Zero || view.Length < elements)
        {
            throw new ArgumentException(
                $"scratch buffer {name} needs {elements} elements at a non-null address, got {view.Length} at 0x{view.Pointer:x}.", "scratch");
        }
    }
}
