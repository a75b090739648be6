using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// INT8 quantization of one 64-row Q tile or K block by a 128-thread block (the Q/K step of
/// <see cref="QkvQuantizeKernel"/>), with the numbers of <see cref="QuantizeInt8Kernel"/>.
/// </summary>
/// <remarks>
/// (1) Every thread loads all its slices (<see cref="TileSlices"/>), takes |x − mean| per row over its 8 channels
/// and reduces the row over the Dp / 8 threads sharing it with xor shuffles; (2) after a barrier, 64 threads take
/// the maximum over each row's scale group and write the scale slots; (3) after a second barrier every thread
/// quantizes its slices from registers (round to nearest even) and stores 8 bytes per slice, so a row is one
/// coalesced 64- or 128-byte store. The input is read once, with no shared-memory staging.
/// </remarks>
public static class Int8TileQuantizer
{
    private const int Tile = SageConstants.QTileRows;

    /// <summary>Quantizes tile <paramref name="tile"/> of head (b, h). Every thread of the block must call it.</summary>
    /// <param name="mean">The thread's 8 channel means (zeros when not smoothing).</param>
    /// <param name="rowAbsMax">Shared scratch, 64 floats.</param>
    /// <param name="rowInverse">Shared scratch, 64 floats.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run(in StridedTensor input, ArrayView<sbyte> output, ArrayView<float> scales, int b, int h, int tile,
        int paddedTokens, int paddedHeadDim, int elementType, int granularity, int isKey, float scaleFold, bool vector,
        in Float8 mean, in TileSlices.Mapping m, ArrayView<float> rowAbsMax, ArrayView<float> rowInverse)
    {
        int tid = Group.IdxX;
        int firstRow = tile * Tile;
        var s = default(TileSlices);
        s.Load(input, b, h, firstRow, m, vector);

        // Phase 1: row maxima of |x - mean|.
        RowAbsMax(s.S0, input, firstRow, 0, elementType, mean, m, paddedHeadDim, rowAbsMax);
        RowAbsMax(s.S1, input, firstRow, 1, elementType, mean, m, paddedHeadDim, rowAbsMax);
        RowAbsMax(s.S2, input, firstRow, 2, elementType, mean, m, paddedHeadDim, rowAbsMax);
        RowAbsMax(s.S3, input, firstRow, 3, elementType, mean, m, paddedHeadDim, rowAbsMax);
        if (m.Passes > 4)
        {
            RowAbsMax(s.S4, input, firstRow, 4, elementType, mean, m, paddedHeadDim, rowAbsMax);
            RowAbsMax(s.S5, input, firstRow, 5, elementType, mean, m, paddedHeadDim, rowAbsMax);
            RowAbsMax(s.S6, input, firstRow, 6, elementType, mean, m, paddedHeadDim, rowAbsMax);
            RowAbsMax(s.S7, input, firstRow, 7, elementType, mean, m, paddedHeadDim, rowAbsMax);
        }
        Group.Barrier();

        // Phase 2: the scale group's maximum, the inverse scale, and the per-thread scale slots.
        if (tid < Tile)
        {
            float groupMax = Math.Max(QuantizeInt8Kernel.GroupAbsMax(rowAbsMax, tid, granularity, isKey), SageConstants.ScaleEpsilon);
            rowInverse[tid] = SageConstants.Int8Max / groupMax;
            float scale = groupMax / SageConstants.Int8Max * scaleFold;
            long headBase = (long)(b * input.Heads + h) * (paddedTokens / Tile);
            QuantizeInt8Kernel.WriteScaleSlot(scales, headBase + tile, tid, isKey, scale);
        }
        Group.Barrier();

        // Phase 3: quantize from registers, 8 bytes per slice.
        // The thread's first 8-byte output word; each pass is RowsPerPass rows further.
        var output64 = output.Cast<ulong>().SubView((((long)(b * input.Heads + h) * paddedTokens + firstRow + m.RowInPass) * paddedHeadDim + m.C0) / 8);
        int passWords = m.RowsPerPass * paddedHeadDim / 8;
        Store(s.S0, input, firstRow, 0, elementType, mean, m, 0, rowInverse, output64);
        Store(s.S1, input, firstRow, 1, elementType, mean, m, passWords, rowInverse, output64);
        Store(s.S2, input, firstRow, 2, elementType, mean, m, 2 * passWords, rowInverse, output64);
        Store(s.S3, input, firstRow, 3, elementType, mean, m, 3 * passWords, rowInverse, output64);
        if (m.Passes > 4)
        {
            Store(s.S4, input, firstRow, 4, elementType, mean, m, 4 * passWords, rowInverse, output64);
            Store(s.S5, input, firstRow, 5, elementType, mean, m, 5 * passWords, rowInverse, output64);
            Store(s.S6, input, firstRow, 6, elementType, mean, m, 6 * passWords, rowInverse, output64);
            Store(s.S7, input, firstRow, 7, elementType, mean, m, 7 * passWords, rowInverse, output64);
        }
    }

    /// <summary>Reduces |x − mean| of one slice over the threads of its row; the row's first thread writes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RowAbsMax(in Half8 raw, in StridedTensor input, int firstRow, int pass, int elementType,
        in Float8 mean, in TileSlices.Mapping m, int paddedHeadDim, ArrayView<float> rowAbsMax)
    {
        int row = m.Row(pass);
        float amax = raw.Decode(elementType).Centered(mean, firstRow + row < input.Tokens).AbsMax();
        // The Dp / 8 threads of a row are consecutive lanes of one warp (8 or 16 of them).
        amax = Math.Max(amax, Warp.ShuffleXor(amax, 1));
        amax = Math.Max(amax, Warp.ShuffleXor(amax, 2));
        amax = Math.Max(amax, Warp.ShuffleXor(amax, 4));
        if (paddedHeadDim > 64)
            amax = Math.Max(amax, Warp.ShuffleXor(amax, 8));
        if (m.C0 == 0)
            rowAbsMax[row] = amax;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(in Half8 raw, in StridedTensor input, int firstRow, int pass, int elementType, in Float8 mean,
        in TileSlices.Mapping m, int word, ArrayView<float> rowInverse, ArrayView<ulong> output64)
    {
        int row = m.Row(pass);
        float inverse = rowInverse[row];
        var x = raw.Decode(elementType).Centered(mean, firstRow + row < input.Tokens);
        uint low = Quantize(x.F0, inverse) | (Quantize(x.F1, inverse) << 8) | (Quantize(x.F2, inverse) << 16) | (Quantize(x.F3, inverse) << 24);
        uint high = Quantize(x.F4, inverse) | (Quantize(x.F5, inverse) << 8) | (Quantize(x.F6, inverse) << 16) | (Quantize(x.F7, inverse) << 24);
        output64[word] = low | ((ulong)high << 32);
    }

    /// <summary>Round to nearest even, clamp to ±127, as the two's-complement byte (masked: see <see cref="QuantizeInt8Kernel"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Quantize(float value, float inverse)
    {
        int q = DeviceConvert.RoundToNearestEven(value * inverse);
        return (uint)Math.Min(127, Math.Max(-127, q)) & 0xFFu;
    }
}
