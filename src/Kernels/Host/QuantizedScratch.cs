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

    /// <summary>Alignment in bytes of each buffer <see cref="Carve"/> places (what cudaMalloc gives; TMA and 16-byte loads need 16).</summary>
    public const int CarveAlignment = 256;

    /// <summary>Bytes of one block that holds every scratch buffer of <paramref name="layout"/> as <see cref="Carve"/> places them.</summary>
    public static long CarvedBytes(QuantizedLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        long total = 0;
        foreach (var (_, bytes) in layout.ScratchBytes)
            total += AlignUp(bytes);
        return total;
    }

    /// <summary>
    /// The scratch set inside one block of at least <see cref="CarvedBytes"/> bytes, each buffer at the next
    /// <see cref="CarveAlignment"/> boundary.
    /// </summary>
    /// <remarks>Why one block: the backend allocates scratch per call from libtorch's caching allocator, and ten tensors
    /// cost ten allocations and ten disposals of host time before the first launch — time a lone call's GPU spends
    /// idle.</remarks>
    /// <param name="layout">The sizes.</param>
    /// <param name="block">Device address of the block, aligned to <see cref="CarveAlignment"/>.</param>
    /// <param name="blockBytes">Bytes of the block.</param>
    /// <exception cref="ArgumentException">The block is misaligned or smaller than <see cref="CarvedBytes"/>.</exception>
    public static QuantizedScratch Carve(QuantizedLayout layout, IntPtr block, long blockBytes)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (block == IntPtr.Zero || block % CarveAlignment != 0)
            throw new ArgumentException($"the scratch block must be a non-null address aligned to {CarveAlignment} bytes, got 0x{block:x}.", nameof(block));
        long needed = CarvedBytes(layout);
        if (blockBytes < needed)
            throw new ArgumentException($"the scratch block has {blockBytes} bytes; this layout needs {needed}.", nameof(blockBytes));
        long offset = 0;
        return Allocate(layout, (_, bytes) =>
        {
            var address = block + (nint)offset;
            offset += AlignUp(bytes);
            return address;
        });
    }

    private static long AlignUp(long bytes) => (bytes + CarveAlignment - 1) / CarveAlignment * CarveAlignment;

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
