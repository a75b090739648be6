using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;
using SageAttn.Quantization.Formats;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// Hopper warpgroup tensor-core products (<c>wgmma.mma_async</c>, sm_90a): one warpgroup of 4 consecutive
/// warps (128 threads) computes a 64 × N tile. On ILGPU's CPU accelerator an exact emulation runs instead, so
/// CI executes the same kernel code.
/// </summary>
/// <remarks>
/// <para>Operands in shared memory are named by 64-bit descriptors (<see cref="Descriptor"/>). Layout without
/// swizzle, K-major (verified on the H100, see the notes): the tile is made of core matrices of 8 rows × 16
/// bytes (128 contiguous bytes, rows 16 bytes apart); LBO is the step between core matrices along K, SBO the
/// step between 8-row groups along M or N.</para>
/// <para>Accumulators: warp w of the warpgroup holds rows 16w + g and 16w + g + 8 (g = lane / 4), columns
/// 8j + 2t and 8j + 2t + 1 (t = lane % 4) — the mma.sync m16n8 layout per warp. A from registers
/// (<see cref="MmaE4M3"/>) uses the mma.sync A fragment per warp, warp w supplying rows 16w..16w + 15.</para>
/// <para>Ordering on the GPU: shared memory written by ordinary stores or cp.async needs
/// <see cref="SharedWindow.FenceProxyAsync"/> in the writing threads and a barrier before a wgmma reads it;
/// <see cref="Fence"/> before the first wgmma of a batch (registers touched by ordinary instructions);
/// <see cref="Commit"/> then <see cref="WaitAll"/> before the accumulators are read. The emulation computes
/// synchronously, so those calls are no-ops on the CPU.</para>
/// <para>Emulated accumulation: 8-bit products sum exactly (INT32 exactly; e4m3 in double, rounded once to
/// FP32; fp16 in double per k16 step, added to the accumulator and rounded to FP32 once per step). The FP8 wgmma
/// on the H100 keeps fewer accumulator bits (max abs error 2.3e-3 on sums of 32
/// products in the notes), so GPU results differ from the emulation by that much.</para>
/// <para>Every call must be made by all 128 threads of the warpgroup with uniform control flow.</para>
/// </remarks>
public static partial class WarpGroupMma
{
    /// <summary>Largest number of warps in a group that uses the emulations with A from registers (<see cref="MmaE4M3"/>, <see cref="IssueE4M3K64"/>, <see cref="IssueF16K64"/>): four warpgroups.</summary>
    public const int MaxWarps = 16;

    /// <summary>A registers staged per lane by the emulations with A from registers (one k32 e4m3 or one k16 fp16 step).</summary>
    private const int StagedWordsPerLane = 4;

    /// <summary>
    /// Bytes of dynamic shared memory a CPU launch must add at the end of the kernel's own dynamic shared
    /// memory for the emulations with A from registers (they stage A there). CUDA launches need none.
    /// </summary>
    public const int EmulationSharedBytes = MaxWarps * 32 * StagedWordsPerLane * sizeof(uint);

    /// <summary>
    /// The 64-bit shared-memory matrix descriptor without swizzle: bits 0-13 start address / 16, bits 16-29
    /// LBO / 16, bits 32-45 SBO / 16, bits 62-63 swizzle mode 0. Addresses and offsets must be multiples of 16.
    /// </summary>
    /// <param name="sharedAddress">Byte address in the shared window (<see cref="SharedWindow.SharedAddress"/>).</param>
    /// <param name="leadingByteOffset">Bytes between core matrices along K.</param>
    /// <param name="strideByteOffset">Bytes between 8-row groups along M or N.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Descriptor(uint sharedAddress, int leadingByteOffset, int strideByteOffset) =>
        (long)((sharedAddress & 0x3FFFF) >> 4)
        | ((long)((leadingByteOffset >> 4) & 0x3FFF) << 16)
        | ((long)((strideByteOffset >> 4) & 0x3FFF) << 32);

    /// <summary>
    /// The low word of a swizzled K-major descriptor (start address; LBO = 1, unused when a slice lies inside one
    /// swizzled row): what the issue functions take, stepping the start by 32 bytes per k32 slice of 8-bit elements (or
    /// k16 slice of fp16) with 32-bit adds.
    /// The tile must start on a multiple of 8 rows (1024 bytes for 128-byte rows, 512 for 64).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint DescriptorLow(uint sharedAddress) => ((sharedAddress & 0x3FFFF) >> 4) | (1u << 16);

    /// <summary>
    /// The high word of a swizzled K-major descriptor (bits 32–63): SBO (bytes between 8-row groups, i.e. 8 rows of
    /// <paramref name="rowBytes"/>) and the swizzle mode of <paramref name="rowBytes"/>-byte rows (64 or 128).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint DescriptorHigh(int rowBytes) =>
        (uint)(8 * rowBytes >> 4) | ((uint)(rowBytes == 128 ? SharedSwizzle.Bytes128 : SharedSwizzle.Bytes64) << 30);

    /// <summary><c>wgmma.fence.sync.aligned</c>: orders earlier register writes before the next wgmma reads them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fence()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("wgmma.fence.sync.aligned;");
    }

    /// <summary><c>wgmma.commit_group.sync.aligned</c>: closes the batch of wgmma issued since the last commit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Commit()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("wgmma.commit_group.sync.aligned;");
    }

    /// <summary><c>wgmma.wait_group.sync.aligned 0</c>: every committed batch has completed; accumulators may be read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WaitAll()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("wgmma.wait_group.sync.aligned 0;");
    }

    /// <summary>
    /// <c>wgmma.wait_group.sync.aligned 1</c>: every committed batch but the latest has completed, so the accumulators of
    /// an earlier batch may be read while the latest one is still in flight.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WaitAllButLatest()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("wgmma.wait_group.sync.aligned 1;");
    }

    /// <summary>Bytes of the e4m3 ones tile <see cref="IssueE4M3RowSums"/> reads: two 8-row × 16-byte core matrices (k32).</summary>
    public const int OnesTileBytes = 256;

    /// <summary>Four e4m3 ones (0x38 = 1.0) in one word, to fill the ones tile with.</summary>
    public const uint E4M3OnesWord = 0x38383838;

    /// <summary>The ones tile's high descriptor word: SBO 256 bytes (unused with one 8-row group), no swizzle. The PTX of
    /// <see cref="IssueE4M3RowSums"/> spells it as the literal 16 (inline PTX takes literal strings only).</summary>
    private const uint OnesDescriptorHigh = 256 >> 4;

    /// <summary>
    /// The low word of the ones tile's descriptor: no swizzle, LBO = 128 bytes (the k16..31 core matrix follows the k0..15
    /// one). Both k32 steps read the same 256 bytes: every element is 1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint OnesDescriptorLow(uint sharedAddress) => ((sharedAddress & 0x3FFFF) >> 4) | ((128u >> 4) << 16);

    /// <summary>
    /// Issues the row sums of an FP8 A operand over K = 64: two chained <c>m64n8k32 f32.e4m3.e4m3</c> wgmma of A (registers)
    /// against the ones tile (<see cref="OnesTileBytes"/> bytes of <see cref="E4M3OnesWord"/> at
    /// <paramref name="onesDesc"/>, <see cref="OnesDescriptorLow"/>), so that every column of the 64 × 8 product is a
    /// row's sum; this lane receives rows g (<paramref name="sumLo"/>) and g + 8 (<paramref name="sumHi"/>) of its warp,
    /// already reduced over the row's 64 keys. Issued after a product that fenced the same A registers
    /// (<see cref="IssueE4M3K64"/>) in the same commit group: no fence of its own, no commit; read the sums only after
    /// a wait. A statement of its own because with a P·V half it would need 47 operands (ILGPU takes at most 44).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void IssueE4M3RowSums(out float sumLo, out float sumHi, in AFrag a0, in AFrag a1, uint onesDesc, ArrayView<byte> shared)
    {
        if (CudaAsm.IsSupported)
        {
            Output<float> lo = default, hi = default;
            Input<uint> x0 = a0.R0, x1 = a0.R1, x2 = a0.R2, x3 = a0.R3, y0 = a1.R0, y1 = a1.R1, y2 = a1.R2, y3 = a1.R3;
            Input<uint> b = onesDesc;
            CudaAsm.EmitRef(
                "{ .reg .pred pz, po; .reg .f32 c1, c3; .reg .b64 db; setp.ne.b32 pz, %10, %10; setp.eq.b32 po, %10, %10; "
                + "mov.b64 db, {%10, 16}; "
                + "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0, c1, %1, c3}, {%2, %3, %4, %5}, db, pz, 1, 1; "
                + "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%0, c1, %1, c3}, {%6, %7, %8, %9}, db, po, 1, 1; }",
                ref lo, ref hi, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1, ref y2, ref y3, ref b);
            sumLo = lo.Value;
            sumHi = hi.Value;
            return;
        }
        long full = onesDesc | (long)OnesDescriptorHigh << 32;
        var staged = StageA(a0, shared);
        int col = 2 * (Warp.LaneIdx & 3);
        sumLo = (float)DotE4M3(shared, staged, full, false, col);
        sumHi = (float)DotE4M3(shared, staged, full, true, col);
        Warp.Barrier();
        staged = StageA(a1, shared);
        sumLo = (float)(sumLo + DotE4M3(shared, staged, full, false, col));
        sumHi = (float)(sumHi + DotE4M3(shared, staged, full, true, col));
        Warp.Barrier();
    }

    /// <summary>First accumulator row of this thread: 16 · (warp in the warpgroup) + lane / 4.</summary>
    private static int RowBase() => 16 * ((Group.IdxX / 32) & 3) + (Warp.LaneIdx >> 2);

    /// <summary>
    /// Byte offset, inside the shared window, of element (row, k) of a K-major tile named by a descriptor: without swizzle
    /// core matrices of 8 rows × 16 bytes (LBO along K, SBO along rows); with a 64- or 128-byte swizzle rows of that many
    /// bytes, 8-row groups SBO apart, and the 16-byte chunks of each address permuted (<see cref="SharedSwizzle"/>).
    /// </summary>
    private static int ElementAddress(long descriptor, int row, int k)
    {
        int start = (int)(descriptor & 0x3FFF) << 4;
        int leading = (int)((descriptor >> 16) & 0x3FFF) << 4;
        int stride = (int)((descriptor >> 32) & 0x3FFF) << 4;
        int mode = (int)((descriptor >> 62) & 3);
        if (mode == 0)
            return start + (row >> 3) * stride + (k >> 4) * leading + (row & 7) * 16 + (k & 15);
        int rowBytes = mode == SharedSwizzle.Bytes128 ? 128 : 64;
        return SharedSwizzle.Apply(start + (row >> 3) * stride + (row & 7) * rowBytes + k, rowBytes);
    }

    /// <summary>Σ_k A[row, k] · B[col, k] over k32, both INT8 tiles in shared memory.</summary>
    private static int DotS8(ArrayView<byte> tiles, long descA, long descB, int row, int col)
    {
        int sum = 0;
        for (int k = 0; k < 32; k++)
            sum += (sbyte)tiles[ElementAddress(descA, row, k)] * (sbyte)tiles[ElementAddress(descB, col, k)];
        return sum;
    }

    /// <summary>Writes this lane's A registers to the warp's staging area (the last <see cref="EmulationSharedBytes"/> of <paramref name="shared"/>) and waits for the warp.</summary>
    private static ArrayView<uint> StageA(in AFrag a, ArrayView<byte> shared)
    {
        const int warpWords = 32 * StagedWordsPerLane;
        var scratch = shared.SubView(shared.Length - EmulationSharedBytes, EmulationSharedBytes).Cast<uint>();
        var staged = scratch.SubView(Group.IdxX / 32 * warpWords, warpWords);
        int lane = Warp.LaneIdx;
        staged[lane * StagedWordsPerLane + 0] = a.R0;
        staged[lane * StagedWordsPerLane + 1] = a.R1;
        staged[lane * StagedWordsPerLane + 2] = a.R2;
        staged[lane * StagedWordsPerLane + 3] = a.R3;
        Warp.Barrier();
        return staged;
    }

    /// <summary>
    /// Σ_k A[row, k] · B[col, k] over k32 in e4m3, exact in double. A row g (or g + 8 when <paramref name="upper"/>)
    /// of this warp: k = 4kq..4kq + 3 sits in lane 4g + kq % 4, register R0/R1 (kq &lt; 4) or R2/R3.
    /// </summary>
    private static double DotE4M3(ArrayView<byte> tiles, ArrayView<uint> staged, long descB, bool upper, int col)
    {
        int g = Warp.LaneIdx >> 2;
        double sum = 0;
        for (int k = 0; k < 32; k++)
        {
            int kq = k >> 2;
            uint word = staged[(4 * g + (kq & 3)) * StagedWordsPerLane + (kq >= 4 ? 2 : 0) + (upper ? 1 : 0)];
            uint a = (word >> (8 * (k & 3))) & 0xFF;
            sum += (double)DeviceConvert.DecodeE4M3(a) * DeviceConvert.DecodeE4M3(tiles[ElementAddress(descB, col, k)]);
        }
        return sum;
    }

    /// <summary>
    /// Σ_k A[row, k] · B[col, k] over k16 in fp16, exact in double. A row g (or g + 8 when <paramref name="upper"/>) of this
    /// warp, the m16n8k16 A fragment: k = 2t, 2t + 1 sit in lane 4g + t, register R0 (row g) / R1 (row g + 8), k = 8 + 2t, 9 + 2t
    /// in R2 / R3, the lower k in the low half. B's element k is the two bytes at byte 2k of its K-major row.
    /// </summary>
    private static double DotF16(ArrayView<byte> tiles, ArrayView<uint> staged, long descB, bool upper, int col)
    {
        int g = Warp.LaneIdx >> 2;
        double sum = 0;
        for (int k = 0; k < 16; k++)
        {
            uint word = staged[(4 * g + ((k & 7) >> 1)) * StagedWordsPerLane + (k >= 8 ? 2 : 0) + (upper ? 1 : 0)];
            ushort a = (ushort)(word >> (16 * (k & 1)));
            int at = ElementAddress(descB, col, 2 * k);
            ushort b = (ushort)(tiles[at] | tiles[at + 1] << 8);
            sum += (double)DeviceConvert.Fp16ToFloat(a) * DeviceConvert.Fp16ToFloat(b);
        }
        return sum;
    }
}
