using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// A 64-row tile of raw fp16/bf16 bits in shared memory, so that threads can read it by channel after loading it by
/// row: rows of Dp elements, each row 16-byte chunks (<see cref="Half8"/>) whose order is swizzled by the row.
/// </summary>
/// <remarks>
/// <para>Why raw bits, one 16-byte store per slice: staging decoded floats took eight 4-byte stores per slice, and with
/// Dp / 8 lanes of a row writing 32 bytes apart every store was a 4-way bank conflict (H100, ncu: 74% of the
/// quantization launch's shared-store wavefronts were conflicts). A 16-byte store of a row's eight lanes covers 128
/// contiguous bytes, and the tile takes 16 KB instead of 33. The reader decodes (exact, as the writer did).</para>
/// <para>Swizzle: chunk j of row r sits at chunk j ^ ((r / 8) mod 8) of that row. A row's chunks stay a permutation
/// (the writer's 16-byte stores stay conflict-free), and readers that take one channel of rows 8 or 16 apart — the
/// V quantizer's lanes, one channel group and four (FP8, tokens 16 apart) or eight (FP16, 8 apart) token groups — land
/// in different chunks, hence different banks. Dp / 8 ≥ 8 chunks per row, so the xor stays inside the row.</para>
/// </remarks>
public static class TileStaging
{
    /// <summary>16-byte chunks of the staging area: 64 rows of at most 128 elements.</summary>
    public const int Chunks = SageConstants.KBlockKeys * 128 / 8;

    /// <summary>Stores one thread's slice (channels <paramref name="c0"/> .. + 7, <paramref name="c0"/> a multiple of 8) of row <paramref name="row"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(ArrayView<Half8> staging, in Half8 raw, int row, int c0, int paddedHeadDim) =>
        staging[ChunkIndex(row, c0 >> 3, paddedHeadDim)] = raw;

    /// <summary>Channel <paramref name="c"/> of row <paramref name="row"/> as a float (exact: fp16 and bf16 embed in binary32).</summary>
    /// <param name="bits">The staging area as 16-bit elements (<c>staging.Cast&lt;ushort&gt;()</c>).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Read(ArrayView<ushort> bits, int row, int c, int paddedHeadDim, int elementType) =>
        DeviceConvert.ToFloat(bits[ChunkIndex(row, c >> 3, paddedHeadDim) * 8 + (c & 7)], elementType);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ChunkIndex(int row, int chunk, int paddedHeadDim) => row * (paddedHeadDim >> 3) + (chunk ^ ((row >> 3) & 7));
}
