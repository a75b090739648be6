namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Tensor maps (CUtensorMap, 128 bytes) for the copy engine's 2-D tiled loads (<c>TensorCopy.LoadTile</c>): a
/// row-major byte tensor of <c>rows</c> × <c>rowBytes</c>, read in boxes of <c>boxBytes</c> (64 or 128) × <c>boxRows</c>
/// written to shared memory with the swizzle of that row width. Encoded on the host by the driver (<c>cuTensorMapEncodeTiled</c>, a pure host
/// call) and passed to the kernel by value as a parameter.
/// </summary>
public static unsafe class CudaTensorMap
{
    /// <summary>Bytes of one map.</summary>
    public const int Bytes = 128;

    /// <summary>Alignment the driver and the copy engine require of a map in memory.</summary>
    public const int Alignment = 64;

    private const int DataTypeUInt8 = 0, InterleaveNone = 0, Swizzle64B = 2, Swizzle128B = 3, L2Promotion128B = 2, OobFillNone = 0;

    /// <summary>Encodes the map of a [<paramref name="rows"/>, <paramref name="rowBytes"/>] byte tensor at <paramref name="address"/> into <paramref name="destination"/>.</summary>
    /// <param name="destination">128 bytes; the driver needs them 64-byte aligned, so they are encoded into an aligned buffer and copied.</param>
    /// <param name="address">Device address of byte 0 (16-byte aligned).</param>
    /// <param name="rows">Rows of the tensor (≤ 2³²).</param>
    /// <param name="rowBytes">Bytes per row (a multiple of 16).</param>
    /// <param name="boxBytes">Bytes of each box row, 64 or 128: also the swizzle.</param>
    /// <param name="boxRows">Rows of one box (≤ 256).</param>
    /// <exception cref="ArgumentException">A size breaks the copy engine's limits.</exception>
    /// <exception cref="CudaException">The driver rejected the map.</exception>
    public static void Encode(Span<byte> destination, IntPtr address, long rows, long rowBytes, int boxBytes, int boxRows)
    {
        if (destination.Length < Bytes)
            throw new ArgumentException($"a tensor map needs {Bytes} bytes, got {destination.Length}.", nameof(destination));
        if (address == IntPtr.Zero || (address.ToInt64() & 15) != 0)
            throw new ArgumentException($"the tensor must start at a non-null 16-byte aligned address, got 0x{address:x}.", nameof(address));
        if (rows <= 0 || rows > uint.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "tensor maps take 1 to 2^32 rows.");
        if (rowBytes < 16 || rowBytes % 16 != 0 || rowBytes >= 1L << 40)
            throw new ArgumentOutOfRangeException(nameof(rowBytes), rowBytes, "the row stride must be a positive multiple of 16 bytes below 2^40.");
        if (boxBytes is not (64 or 128) || boxBytes > rowBytes)
            throw new ArgumentOutOfRangeException(nameof(boxBytes), boxBytes, "boxes are 64 or 128 bytes wide, at most a row.");
        if (boxRows is < 1 or > 256)
            throw new ArgumentOutOfRangeException(nameof(boxRows), boxRows, "a box has 1 to 256 rows.");

        CudaDriver.Initialize();
        ulong* dims = stackalloc ulong[2] { (ulong)rowBytes, (ulong)rows };
        ulong* strides = stackalloc ulong[1] { (ulong)rowBytes };
        uint* box = stackalloc uint[2] { (uint)boxBytes, (uint)boxRows };
        uint* elementStrides = stackalloc uint[2] { 1, 1 };
        byte* raw = stackalloc byte[Bytes + Alignment];
        byte* aligned = (byte*)(((nint)raw + Alignment - 1) & ~(nint)(Alignment - 1));
        CudaDriver.Check(
            CudaNative.cuTensorMapEncodeTiled(aligned, DataTypeUInt8, 2, address, dims, strides, box, elementStrides,
                InterleaveNone, boxBytes == 128 ? Swizzle128B : Swizzle64B, L2Promotion128B, OobFillNone),
            $"encoding a tensor map of {rows} rows × {rowBytes} bytes (box {boxBytes} bytes × {boxRows} rows)");
        new ReadOnlySpan<byte>(aligned, Bytes).CopyTo(destination);
    }
}
