using System.Runtime.CompilerServices;
using ILGPU;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// One thread's share of a 64-row tile, as raw bits in registers: slice i is channels c0 .. c0 + 7 of tile row
/// i · rowsPerPass + rowInPass. With 128 threads, Dp / 8 threads cover a row, so a tile takes 8 passes at
/// Dp = 128 (S0..S7) and 4 at Dp = 64 (S0..S3).
/// </summary>
/// <remarks>Named fields, not an array: ILGPU does not unroll loops, and a register array indexed by a loop
/// variable would live in local memory. All loads are issued before any value is used.</remarks>
public struct TileSlices
{
    public Half8 S0, S1, S2, S3, S4, S5, S6, S7;

    /// <summary>Threads per block of the tile kernels.</summary>
    public const int Threads = 128;

    /// <summary>Where a thread's slices are: its channel group and row within a pass, and the pass stride.</summary>
    public readonly struct Mapping
    {
        public readonly int C0, RowInPass, RowsPerPass, Passes;

        /// <summary>The mapping of thread <paramref name="tid"/> for a padded head dim of 64 or 128.</summary>
        public Mapping(int tid, int paddedHeadDim)
        {
            int lanesPerRow = paddedHeadDim / 8;
            C0 = (tid & (lanesPerRow - 1)) * 8;
            RowInPass = tid / lanesPerRow;
            RowsPerPass = Threads / lanesPerRow;
            Passes = SageConstants.QTileRows / RowsPerPass;
        }

        /// <summary>Tile row of pass <paramref name="pass"/>.</summary>
        public int Row(int pass) => pass * RowsPerPass + RowInPass;
    }

    /// <summary>Loads the thread's slices of the tile whose first token is <paramref name="firstRow"/>.</summary>
    /// <remarks>The first slice's element offset is computed once and the others step by the pass stride (one 64-bit add
    /// each, where <see cref="Half8.Load"/> multiplies out batch, head and token per slice); 16-byte loads are taken when
    /// every slice is aligned, which the first offset and the stride decide together.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Load(in StridedTensor t, int b, int h, int firstRow, in Mapping m, bool vector)
    {
        int n = firstRow + m.RowInPass;
        long first = t.RowOffset(b, h, n) + m.C0;
        long step = m.RowsPerPass * t.StrideToken;
        bool wide = vector && m.C0 + 8 <= t.HeadDim && ((first | step) & 7) == 0;
        S0 = Half8.LoadAt(t, first, n, m.C0, wide);
        S1 = Half8.LoadAt(t, first + step, n + m.RowsPerPass, m.C0, wide);
        S2 = Half8.LoadAt(t, first + 2 * step, n + 2 * m.RowsPerPass, m.C0, wide);
        S3 = Half8.LoadAt(t, first + 3 * step, n + 3 * m.RowsPerPass, m.C0, wide);
        if (m.Passes > 4)
        {
            S4 = Half8.LoadAt(t, first + 4 * step, n + 4 * m.RowsPerPass, m.C0, wide);
            S5 = Half8.LoadAt(t, first + 5 * step, n + 5 * m.RowsPerPass, m.C0, wide);
            S6 = Half8.LoadAt(t, first + 6 * step, n + 6 * m.RowsPerPass, m.C0, wide);
            S7 = Half8.LoadAt(t, first + 7 * step, n + 7 * m.RowsPerPass, m.C0, wide);
        }
    }

    /// <summary>Stores every slice into the staging area (<see cref="TileStaging"/>) at its tile row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Stage(ArrayView<Half8> staging, in Mapping m, int paddedHeadDim) => Stage(staging, m, paddedHeadDim, 0);

    /// <summary>
    /// Stores every slice into the staging area at its tile row plus <paramref name="rowOffset"/> (64 places a Dp = 64
    /// tile in the second half of the area, which holds 64 rows at Dp = 128).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Stage(ArrayView<Half8> staging, in Mapping m, int paddedHeadDim, int rowOffset)
    {
        TileStaging.Store(staging, S0, rowOffset + m.Row(0), m.C0, paddedHeadDim);
        TileStaging.Store(staging, S1, rowOffset + m.Row(1), m.C0, paddedHeadDim);
        TileStaging.Store(staging, S2, rowOffset + m.Row(2), m.C0, paddedHeadDim);
        TileStaging.Store(staging, S3, rowOffset + m.Row(3), m.C0, paddedHeadDim);
        if (m.Passes > 4)
        {
            TileStaging.Store(staging, S4, rowOffset + m.Row(4), m.C0, paddedHeadDim);
            TileStaging.Store(staging, S5, rowOffset + m.Row(5), m.C0, paddedHeadDim);
            TileStaging.Store(staging, S6, rowOffset + m.Row(6), m.C0, paddedHeadDim);
            TileStaging.Store(staging, S7, rowOffset + m.Row(7), m.C0, paddedHeadDim);
        }
    }
}
