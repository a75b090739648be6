using System.Runtime.CompilerServices;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// The shared-memory swizzles the copy engine writes (<see cref="TensorCopy"/>) and wgmma reads (swizzled descriptors):
/// for rows of 128 (or 64) bytes, 16-byte chunk bits 4–6 (4–5) of a shared address are XORed with bits 7–9 (7–8), so
/// the 8 rows of a core-matrix column fall in 8 different bank groups. Both units apply it to the address itself, so a
/// swizzled tile must start on a multiple of 8 rows (1024 or 512 bytes).
/// </summary>
public static class SharedSwizzle
{
    /// <summary>The descriptor's swizzle mode of 128-byte rows.</summary>
    public const int Bytes128 = 1;

    /// <summary>The descriptor's swizzle mode of 64-byte rows.</summary>
    public const int Bytes64 = 2;

    /// <summary>The physical byte offset of logical offset <paramref name="offset"/> in a tile of <paramref name="rowBytes"/>-byte rows (64 or 128).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Apply(int offset, int rowBytes) => offset ^ (((offset >> 7) & (rowBytes / 16 - 1)) << 4);
}
