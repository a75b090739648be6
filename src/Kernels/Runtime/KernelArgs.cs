using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Builds the <c>void** kernelParams</c> array of <c>cuLaunchKernel</c> for an explicitly grouped
/// ILGPU kernel, whose PTX parameters are exactly its C# parameters in order.
/// </summary>
/// <remarks>
/// Layouts (verified in ILGPU 1.5.3 PTX, see <see cref="PtxCompiler"/>): an
/// <c>ArrayView&lt;T&gt;</c> is 16 bytes aligned to 8, {device pointer, int64 element count};
/// <c>int</c> and <c>float</c> are 4 bytes; a struct parameter is passed by value with its C#
/// sequential layout (a struct holding views needs a host mirror with <see cref="DeviceView"/>
/// fields, because <c>ArrayView&lt;T&gt;</c> is not unmanaged); a <c>SpecializedValue&lt;T&gt;</c> keeps its slot (pass the same value with
/// <see cref="Add{T}"/>; the specialized kernel ignores it). Values are copied into one unmanaged
/// block when added, so the builder can be reused only after the launch call returned (the driver
/// copies parameters at launch). Dispose frees the block.
/// </remarks>
public sealed unsafe class KernelArgs : IDisposable
{
    private readonly List<(int Offset, int Size)> _slots = new();
    private byte[] _staging = new byte[256];
    private int _used;

    /// <summary>Number of kernel parameters added so far.</summary>
    public int Count => _slots.Count;

    /// <summary>Adds an <c>ArrayView&lt;T&gt;</c> parameter from a raw device pointer and its element count.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public KernelArgs AddView(IntPtr pointer, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return Add(new DeviceView(pointer, length));
    }

    /// <summary>Adds an <c>int</c> parameter (<c>.b32</c>).</summary>
    public KernelArgs Add(int value) => Add<int>(value);

    /// <summary>Adds a <c>float</c> parameter (<c>.f32</c>).</summary>
    public KernelArgs Add(float value) => Add<float>(value);

    /// <summary>Adds any unmanaged value by its C# layout (structs, <c>long</c>, <c>SpecializedValue&lt;T&gt;</c>, ...).</summary>
    public KernelArgs Add<T>(T value)
        where T : unmanaged
    {
        int alignment = AlignmentOf<T>();
        int offset = (_used + alignment - 1) / alignment * alignment;
        int end = offset + sizeof(T);
        if (end > _staging.Length)
        {
            Array.Resize(ref _staging, Math.Max(end, _staging.Length * 2));
        }

        MemoryMarshal.Write(_staging.AsSpan(offset), in value);
        _slots.Add((offset, sizeof(T)));
        _used = end;
        return this;
    }

    /// <summary>
    /// Adds one parameter from its raw device image (e.g. from <see cref="KernelParamWriter"/>), for
    /// structs holding <c>ArrayView&lt;T&gt;</c> fields that cannot be passed to <see cref="Add{T}"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="bytes"/> is empty or <paramref name="alignment"/> is not 1, 2, 4, 8 or 16.</exception>
    public KernelArgs AddBytes(ReadOnlySpan<byte> bytes, int alignment)
    {
        if (bytes.IsEmpty)
        {
            throw new ArgumentException("A kernel parameter needs at least one byte.", nameof(bytes));
        }

        if (alignment is not (1 or 2 or 4 or 8 or 16))
        {
            throw new ArgumentException($"Alignment must be 1, 2, 4, 8 or 16, got {alignment}.", nameof(alignment));
        }

        int offset = (_used + alignment - 1) / alignment * alignment;
        int end = offset + bytes.Length;
        if (end > _staging.Length)
        {
            Array.Resize(ref _staging, Math.Max(end, _staging.Length * 2));
        }

        bytes.CopyTo(_staging.AsSpan(offset));
        _slots.Add((offset, bytes.Length));
        _used = end;
        return this;
    }

    /// <summary>Removes all parameters so the builder can be reused.</summary>
    public void Clear()
    {
        _slots.Clear();
        _used = 0;
    }

    /// <summary>
    /// Pins the values, builds the <c>void**</c> array and calls <c>cuLaunchKernel</c>; the
    /// driver copies the parameter values before returning, so nothing stays pinned.
    /// </summary>
    internal int Launch(IntPtr function, in LaunchDimensions dims, IntPtr stream)
    {
        void** pointers = stackalloc void*[Math.Max(1, _slots.Count)];
        fixed (byte* data = _staging)
        {
            for (int i = 0; i < _slots.Count; i++)
            {
                pointers[i] = data + _slots[i].Offset;
            }

            return CudaNative.cuLaunchKernel(
                function,
                (uint)dims.GridX, (uint)dims.GridY, (uint)dims.GridZ,
                (uint)dims.BlockX, (uint)dims.BlockY, (uint)dims.BlockZ,
                (uint)dims.DynamicSharedBytes,
                stream,
                pointers,
                null);
        }
    }

    /// <summary>Copies the parameter bytes out (for tests and diagnostics).</summary>
    public byte[] GetBytes(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _slots.Count);
        var (offset, size) = _slots[index];
        return _staging.AsSpan(offset, size).ToArray();
    }

    /// <inheritdoc />
    public void Dispose() => Clear();

    private static int AlignmentOf<T>()
        where T : unmanaged
    {
        // Staging alignment only keeps MemoryMarshal writes tidy; the driver copies each
        // parameter by its PTX size and alignment from wherever the pointer points.
        int size = Unsafe.SizeOf<T>();
        return size >= 8 ? 8 : size >= 4 ? 4 : size >= 2 ? 2 : 1;
    }
}
