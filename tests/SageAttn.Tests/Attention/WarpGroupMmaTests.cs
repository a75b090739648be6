using ILGPU;
using ILGPU.Runtime;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization.Formats;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Attention;

/// <summary>
/// The wgmma intrinsics' CPU emulation against products computed directly on the host, with operands stored
/// through the documented no-swizzle K-major layout and read back through the documented accumulator layout.
/// This pins the layout contract the Hopper kernel relies on; the GPU side is checked end to end by
/// CudaHopperAttentionTests (the hardware verified these layouts on the H100, see the notes).
/// </summary>
public sealed class WarpGroupMmaTests(CpuAcceleratorFixture fixture) : IClassFixture<CpuAcceleratorFixture>
{
    /// <summary>A 64 × 32-byte K-major tile: core matrices of 8 rows × 16 bytes, LBO 128 (along K), SBO 256 (8-row groups).</summary>
    private static int TileOffset(int row, int k) => (row >> 3) * 256 + (k >> 4) * 128 + (row & 7) * 16 + (k & 15);

    private const int TileBytes = 64 * 32;

    /// <summary>D = A·Bᵀ + A·Bᵀ through two MmaS8 calls (the second accumulating); A and B are [64, 32] INT8 row-major.</summary>
    private static void S8Kernel(ArrayView<byte> a, ArrayView<byte> b, ArrayView<int> d)
    {
        var shared = SharedMemory.GetDynamic<byte>();
        int tid = Group.IdxX;
        for (int i = tid; i < TileBytes; i += 128)
        {
            shared[TileOffset(i / 32, i % 32)] = a[i];
            shared[TileBytes + TileOffset(i / 32, i % 32)] = b[i];
        }
        SharedWindow.FenceProxyAsync();
        Group.Barrier();
        var acc = default(WarpGroupIntAccumulator);
        long descA = WarpGroupMma.Descriptor(SharedWindow.SharedAddress(0), 128, 256);
        long descB = WarpGroupMma.Descriptor(SharedWindow.SharedAddress(TileBytes), 128, 256);
        WarpGroupMma.Fence();
        WarpGroupMma.MmaS8(ref acc, descA, descB, false, shared);
        WarpGroupMma.MmaS8(ref acc, descA, descB, true, shared);
        WarpGroupMma.Commit();
        WarpGroupMma.WaitAll();
        int row = 16 * (tid / 32) + (Warp.LaneIdx >> 2), col = 2 * (Warp.LaneIdx & 3);
        Put(d, row, col, 0, acc.J0C0, acc.J0C1, acc.J0C2, acc.J0C3);
        Put(d, row, col, 1, acc.J1C0, acc.J1C1, acc.J1C2, acc.J1C3);
        Put(d, row, col, 2, acc.J2C0, acc.J2C1, acc.J2C2, acc.J2C3);
        Put(d, row, col, 3, acc.J3C0, acc.J3C1, acc.J3C2, acc.J3C3);
        Put(d, row, col, 4, acc.J4C0, acc.J4C1, acc.J4C2, acc.J4C3);
        Put(d, row, col, 5, acc.J5C0, acc.J5C1, acc.J5C2, acc.J5C3);
        Put(d, row, col, 6, acc.J6C0, acc.J6C1, acc.J6C2, acc.J6C3);
        Put(d, row, col, 7, acc.J7C0, acc.J7C1, acc.J7C2, acc.J7C3);
    }

    /// <summary>D = A·Bᵀ with A [64, 32] e4m3 codes from registers (mma.sync A fragment per warp) and B from shared memory.</summary>
    private static void E4M3Kernel(ArrayView<byte> a, ArrayView<byte> b, ArrayView<float> d)
    {
        var shared = SharedMemory.GetDynamic<byte>();
        int tid = Group.IdxX;
        for (int i = tid; i < TileBytes; i += 128)
            shared[TileOffset(i / 32, i % 32)] = b[i];
        SharedWindow.FenceProxyAsync();
        Group.Barrier();
        int g = Warp.LaneIdx >> 2, t = Warp.LaneIdx & 3, rowLo = 16 * (tid / 32) + g;
        AFrag frag;
        frag.R0 = Word(a, 32, rowLo, 4 * t);
        frag.R1 = Word(a, 32, rowLo + 8, 4 * t);
        frag.R2 = Word(a, 32, rowLo, 16 + 4 * t);
        frag.R3 = Word(a, 32, rowLo + 8, 16 + 4 * t);
        var acc = default(WarpGroupFloatAccumulator);
        WarpGroupMma.Fence();
        WarpGroupMma.MmaE4M3(ref acc, frag, WarpGroupMma.Descriptor(SharedWindow.SharedAddress(0), 128, 256), false, shared);
        WarpGroupMma.Commit();
        WarpGroupMma.WaitAll();
        int row = rowLo, col = 2 * t;
        Put(d, row, col, 0, acc.J0C0, acc.J0C1, acc.J0C2, acc.J0C3);
        Put(d, row, col, 1, acc.J1C0, acc.J1C1, acc.J1C2, acc.J1C3);
        Put(d, row, col, 2, acc.J2C0, acc.J2C1, acc.J2C2, acc.J2C3);
        Put(d, row, col, 3, acc.J3C0, acc.J3C1, acc.J3C2, acc.J3C3);
        Put(d, row, col, 4, acc.J4C0, acc.J4C1, acc.J4C2, acc.J4C3);
        Put(d, row, col, 5, acc.J5C0, acc.J5C1, acc.J5C2, acc.J5C3);
        Put(d, row, col, 6, acc.J6C0, acc.J6C1, acc.J6C2, acc.J6C3);
        Put(d, row, col, 7, acc.J7C0, acc.J7C1, acc.J7C2, acc.J7C3);
    }

    /// <summary>
    /// Row sums of A [64, 64] e4m3 codes (registers, two k32 fragments) against the ones tile; each lane stores its rows' sums
    /// at [row, t], so all four lanes of a row are checked.
    /// </summary>
    private static void RowSumsKernel(ArrayView<byte> a, ArrayView<float> d)
    {
        var shared = SharedMemory.GetDynamic<byte>();
        var words = shared.Cast<uint>();
        int tid = Group.IdxX;
        if (tid < WarpGroupMma.OnesTileBytes / 4)
            words[tid] = WarpGroupMma.E4M3OnesWord;
        SharedWindow.FenceProxyAsync();
        Group.Barrier();
        int g = Warp.LaneIdx >> 2, t = Warp.LaneIdx & 3, rowLo = 16 * (tid / 32) + g;
        AFrag a0, a1;
        a0.R0 = Word(a, 64, rowLo, 4 * t);
        a0.R1 = Word(a, 64, rowLo + 8, 4 * t);
        a0.R2 = Word(a, 64, rowLo, 16 + 4 * t);
        a0.R3 = Word(a, 64, rowLo + 8, 16 + 4 * t);
        a1.R0 = Word(a, 64, rowLo, 32 + 4 * t);
        a1.R1 = Word(a, 64, rowLo + 8, 32 + 4 * t);
        a1.R2 = Word(a, 64, rowLo, 48 + 4 * t);
        a1.R3 = Word(a, 64, rowLo + 8, 48 + 4 * t);
        WarpGroupMma.Fence();
        WarpGroupMma.IssueE4M3RowSums(out float sumLo, out float sumHi, a0, a1, WarpGroupMma.OnesDescriptorLow(SharedWindow.SharedAddress(0)), shared);
        WarpGroupMma.Commit();
        WarpGroupMma.WaitAll();
        d[rowLo * 4 + t] = sumLo;
        d[(rowLo + 8) * 4 + t] = sumHi;
    }

    /// <summary>Stores n8 chunk <paramref name="j"/> of a thread's accumulator: c0, c1 in row, c2, c3 in row + 8, columns col + 8j and + 1.</summary>
    private static void Put<T>(ArrayView<T> d, int row, int col, int j, T c0, T c1, T c2, T c3) where T : unmanaged
    {
        d[row * 64 + col + 8 * j] = c0;
        d[row * 64 + col + 8 * j + 1] = c1;
        d[(row + 8) * 64 + col + 8 * j] = c2;
        d[(row + 8) * 64 + col + 8 * j + 1] = c3;
    }

    /// <summary>Bytes k..k + 3 of row <paramref name="row"/> of a row-major byte matrix with <paramref name="rowBytes"/>-byte rows, as one word.</summary>
    private static uint Word(ArrayView<byte> a, int rowBytes, int row, int k)
    {
        int i = row * rowBytes + k;
        return a[i] | ((uint)a[i + 1] << 8) | ((uint)a[i + 2] << 16) | ((uint)a[i + 3] << 24);
    }

    [Fact]
    public void MmaS8MatchesHostProduct()
    {
        var accelerator = fixture.Require().Accelerator;
        var random = new Random(11);
        var a = new byte[TileBytes];
        var b = new byte[TileBytes];
        random.NextBytes(a);
        random.NextBytes(b);
        using var ab = accelerator.Allocate1D(a);
        using var bb = accelerator.Allocate1D(b);
        using var db = accelerator.Allocate1D(Enumerable.Repeat(int.MinValue, 64 * 64).ToArray());
        var kernel = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, ArrayView<int>>(S8Kernel);
        kernel(new KernelConfig(1, 128, SharedMemoryConfig.RequestDynamic<byte>(2 * TileBytes + WarpGroupMma.EmulationSharedBytes)), ab.View, bb.View, db.View);
        accelerator.Synchronize();
        var d = db.GetAsArray1D();
        for (int m = 0; m < 64; m++)
        for (int n = 0; n < 64; n++)
        {
            int expected = 0;
            for (int k = 0; k < 32; k++)
                expected += (sbyte)a[m * 32 + k] * (sbyte)b[n * 32 + k];
            Assert.True(2 * expected == d[m * 64 + n], $"D[{m}, {n}] = {d[m * 64 + n]}, expected {2 * expected}");
        }
    }

    [Fact]
    public void MmaE4M3MatchesHostProduct()
    {
        var accelerator = fixture.Require().Accelerator;
        var random = new Random(12);
        // Finite e4m3 codes only (0x7F and 0xFF are NaN).
        byte Code() { byte c; do c = (byte)random.Next(256); while ((c & 0x7F) == 0x7F); return c; }
        var a = Enumerable.Range(0, TileBytes).Select(_ => Code()).ToArray();
        var b = Enumerable.Range(0, TileBytes).Select(_ => Code()).ToArray();
        using var ab = accelerator.Allocate1D(a);
        using var bb = accelerator.Allocate1D(b);
        using var db = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, 64 * 64).ToArray());
        var kernel = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, ArrayView<float>>(E4M3Kernel);
        kernel(new KernelConfig(1, 128, SharedMemoryConfig.RequestDynamic<byte>(TileBytes + WarpGroupMma.EmulationSharedBytes)), ab.View, bb.View, db.View);
        accelerator.Synchronize();
        var d = db.GetAsArray1D();
        for (int m = 0; m < 64; m++)
        for (int n = 0; n < 64; n++)
        {
            double expected = 0;
            for (int k = 0; k < 32; k++)
                expected += (double)E4M3.Decode(a[m * 32 + k]) * E4M3.Decode(b[n * 32 + k]);
            Assert.True(Math.Abs(expected - d[m * 64 + n]) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"D[{m}, {n}] = {d[m * 64 + n]}, expected {expected}");
        }
    }

    [Fact]
    public void RowSumsMatchHostSums()
    {
        var accelerator = fixture.Require().Accelerator;
        var random = new Random(13);
        // Non-negative finite e4m3 codes (P is never negative; 0x7F is NaN).
        var a = Enumerable.Range(0, 64 * 64).Select(_ => (byte)random.Next(0x7F)).ToArray();
        using var ab = accelerator.Allocate1D(a);
        using var db = accelerator.Allocate1D(Enumerable.Repeat(float.NaN, 64 * 4).ToArray());
        var kernel = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>>(RowSumsKernel);
        kernel(new KernelConfig(1, 128, SharedMemoryConfig.RequestDynamic<byte>(WarpGroupMma.OnesTileBytes + WarpGroupMma.EmulationSharedBytes)),
            ab.View, db.View);
        accelerator.Synchronize();
        var d = db.GetAsArray1D();
        for (int m = 0; m < 64; m++)
        {
            double expected = 0;
            for (int k = 0; k < 64; k++)
                expected += E4M3.Decode(a[m * 64 + k]);
            for (int t = 0; t < 4; t++)
                Assert.True(Math.Abs(expected - d[m * 4 + t]) <= 1e-6 * Math.Max(1, expected), $"row {m}, lane {t}: {d[m * 4 + t]}, expected {expected}");
        }
    }
}
