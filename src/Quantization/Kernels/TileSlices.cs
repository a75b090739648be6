using System.Runtime.CompilerServices;

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
            C0 = tid % lanesPerRow * 8;
            RowInPass = tid / lanesPerRow;
            RowsPerPass = Threads / lanesPerRow;
            Passes = SageConstants.QTileRows / RowsPerPass;
        }

        /// <summary>Tile row of pass <paramref name="pass"/>.</summary>
        public int Row(int pass) => pass * RowsPerPass + RowInPass;
    }

    /// <summary>Loads the thread's slices of the tile whose first token is <paramref name="firstRow"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Load(in StridedTensor t, int b, int h, int firstRow, in Mapping m, bool vector)
    {
        S0 = Half8.Load(t, b, h, firstRow + m.Row(0), m.C0, vector);
        S1 = Half8.Load(t, b, h, firstRow + m.Row(1), m.C0, vector);
        S2 = Half8.Load(t, b, h, firstRow + m.Row(2), m.C0, vector);
        S3 = Half8.Load(t, b, h, firstRow + m.Row(3), m.C0, vector);
        if (m.Passes > 4)
        {
            S4 = Half8.Load(t, b, h, firstRow + m.Row(4), m.C0, vector);
            S5 = Half8.Load(t, b, h, firstRow + m.Row(5), m.C0, vector);
            S6 = Half8.Load(t, b, h, firstRow + m.Row(6), m.C0, vector);
            S7 = Half8.Load(t, b, h, firstRow + m.Row(7), m.C0, vector);
        }
    }
}
