using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;
using SageAttn.Quantization.Formats;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// The warp-wide tensor-core products the attention kernels use. On CUDA each call is one
/// <c>mma.sync</c> instruction; on ILGPU's CPU accelerator an exact emulation runs instead, so CI
/// executes the same kernel code.
/// </summary>
/// <remarks>
/// <para>An mma is collective: a lane's result depends on the registers of other lanes. The emulation
/// therefore stages every lane's operands in shared memory, synchronizes the warp, computes the lane's
/// own outputs from the staged operands, and synchronizes again before the staging area is reused.
/// Fragment layouts are those verified on the H100 (see <see cref="AFrag"/>, <see cref="BFrag"/>).</para>
/// <para>Emulated accumulation: 8-bit products are exact in double and the 32 of a row-column pair sum
/// exactly in double, so each output is rounded once, like an exact fused dot product. FP16 accumulation
/// rounds the sum (C + A·B) to fp16 once. FP16 and BF16 products are exact in double as well; their sum is
/// rounded by double only when the products span more than 53 bits of magnitude.</para>
/// <para>Every call must be made by all 32 lanes of a warp with uniform control flow, as on the GPU.</para>
/// </remarks>
public static class TensorCore
{
    /// <summary>Largest number of warps in a group that uses the emulation.</summary>
    private const int MaxWarps = 8;

    /// <summary>Words staged per lane: four A registers and two B registers.</summary>
    private const int WordsPerLane = 6;

    /// <summary>
    /// Dynamic shared memory (in 32-bit words) a launch on the CPU accelerator must request for the
    /// emulation's staging area. It is dynamic, not static, so CUDA launches (which request none) carry no
    /// shared-memory cost for code that never runs there.
    /// </summary>
    public const int EmulationSharedWords = MaxWarps * 32 * WordsPerLane;

    /// <summary>D = A·B + D for INT8: mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MmaS8(ref Int4Frag d, in AFrag a, in BFrag b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<int> c0 = d.C0, c1 = d.C1, c2 = d.C2, c3 = d.C3;
            Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref c0, ref c1, ref c2, ref c3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            d.C0 = c0.Value; d.C1 = c1.Value; d.C2 = c2.Value; d.C3 = c3.Value;
            return;
        }
        d = EmulateMmaS8(d, a, b);
    }

    /// <summary>The CPU emulation of <see cref="MmaS8"/>; kept out of line (operands by value, so no address escapes into device code) so device code carries one copy.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Int4Frag EmulateMmaS8(Int4Frag d, AFrag a, BFrag b)
    {
        var staged = Stage(a, b);
        int lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        d.C0 += (int)DotS8(staged, g, 2 * t, false);
        d.C1 += (int)DotS8(staged, g, 2 * t + 1, false);
        d.C2 += (int)DotS8(staged, g, 2 * t, true);
        d.C3 += (int)DotS8(staged, g, 2 * t + 1, true);
        Warp.Barrier();
        return d;
    }

    /// <summary>D = A·B + D for FP8 with FP32 accumulation: mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MmaE4M3(ref Float4Frag d, in AFrag a, in BFrag b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> c0 = d.C0, c1 = d.C1, c2 = d.C2, c3 = d.C3;
            Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref c0, ref c1, ref c2, ref c3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            d.C0 = c0.Value; d.C1 = c1.Value; d.C2 = c2.Value; d.C3 = c3.Value;
            return;
        }
        d = EmulateMmaE4M3(d, a, b);
    }

    /// <summary>The CPU emulation of <see cref="MmaE4M3"/>; kept out of line (operands by value, so no address escapes into device code) so device code carries one copy.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Float4Frag EmulateMmaE4M3(Float4Frag d, AFrag a, BFrag b)
    {
        var staged = Stage(a, b);
        int lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        d.C0 = (float)(d.C0 + DotE4M3(staged, g, 2 * t, false));
        d.C1 = (float)(d.C1 + DotE4M3(staged, g, 2 * t + 1, false));
        d.C2 = (float)(d.C2 + DotE4M3(staged, g, 2 * t, true));
        d.C3 = (float)(d.C3 + DotE4M3(staged, g, 2 * t + 1, true));
        Warp.Barrier();
        return d;
    }

    /// <summary>D = A·B + D for FP8 with FP16 accumulation (v2++): mma.sync.aligned.m16n8k32.row.col.f16.e4m3.e4m3.f16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MmaE4M3F16(ref Half4Frag d, in AFrag a, in BFrag b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<uint> c0 = d.Lo, c1 = d.Hi;
            Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k32.row.col.f16.e4m3.e4m3.f16 {%0,%1}, {%2,%3,%4,%5}, {%6,%7}, {%0,%1};",
                ref c0, ref c1, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            d.Lo = c0.Value; d.Hi = c1.Value;
            return;
        }
        d = EmulateMmaE4M3F16(d, a, b);
    }

    /// <summary>The CPU emulation of <see cref="MmaE4M3F16"/>; kept out of line (operands by value, so no address escapes into device code) so device code carries one copy.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Half4Frag EmulateMmaE4M3F16(Half4Frag d, AFrag a, BFrag b)
    {
        var staged = Stage(a, b);
        int lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        d.Lo = AddToFp16Pair(d.Lo, DotE4M3(staged, g, 2 * t, false), DotE4M3(staged, g, 2 * t + 1, false));
        d.Hi = AddToFp16Pair(d.Hi, DotE4M3(staged, g, 2 * t, true), DotE4M3(staged, g, 2 * t + 1, true));
        Warp.Barrier();
        return d;
    }

    /// <summary>D = A·B + D for FP16 inputs with FP32 accumulation: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MmaF16(ref Float4Frag d, in AFrag a, in BFrag b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> c0 = d.C0, c1 = d.C1, c2 = d.C2, c3 = d.C3;
            Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref c0, ref c1, ref c2, ref c3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            d.C0 = c0.Value; d.C1 = c1.Value; d.C2 = c2.Value; d.C3 = c3.Value;
            return;
        }
        d = EmulateMmaF16(d, a, b);
    }

    /// <summary>The CPU emulation of <see cref="MmaF16"/>; kept out of line (operands by value, so no address escapes into device code) so device code carries one copy.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Float4Frag EmulateMmaF16(Float4Frag d, AFrag a, BFrag b)
    {
        var staged = Stage(a, b);
        int lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        d.C0 = (float)(d.C0 + DotF16(staged, g, 2 * t, false));
        d.C1 = (float)(d.C1 + DotF16(staged, g, 2 * t + 1, false));
        d.C2 = (float)(d.C2 + DotF16(staged, g, 2 * t, true));
        d.C3 = (float)(d.C3 + DotF16(staged, g, 2 * t + 1, true));
        Warp.Barrier();
        return d;
    }

    /// <summary>D = A·B + D for BF16 inputs with FP32 accumulation: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (same fragment layout as <see cref="MmaF16"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MmaBf16(ref Float4Frag d, in AFrag a, in BFrag b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> c0 = d.C0, c1 = d.C1, c2 = d.C2, c3 = d.C3;
            Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref c0, ref c1, ref c2, ref c3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            d.C0 = c0.Value; d.C1 = c1.Value; d.C2 = c2.Value; d.C3 = c3.Value;
            return;
        }
        d = EmulateMmaBf16(d, a, b);
    }

    /// <summary>The CPU emulation of <see cref="MmaBf16"/>; kept out of line (operands by value, so no address escapes into device code) so device code carries one copy.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Float4Frag EmulateMmaBf16(Float4Frag d, AFrag a, BFrag b)
    {
        var staged = Stage(a, b);
        int lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        d.C0 = (float)(d.C0 + DotBf16(staged, g, 2 * t, false));
        d.C1 = (float)(d.C1 + DotBf16(staged, g, 2 * t + 1, false));
        d.C2 = (float)(d.C2 + DotBf16(staged, g, 2 * t, true));
        d.C3 = (float)(d.C3 + DotBf16(staged, g, 2 * t + 1, true));
        Warp.Barrier();
        return d;
    }

    /// <summary>Writes this lane's operands to the warp's staging area and waits for the whole warp.</summary>
    private static ArrayView<uint> Stage(in AFrag a, in BFrag b)
    {
        var scratch = SharedMemory.GetDynamic<uint>();
        int warp = Group.IdxX / 32;
        var staged = scratch.SubView(warp * 32 * WordsPerLane, 32 * WordsPerLane);
        int lane = Warp.LaneIdx;
        staged[lane * WordsPerLane + 0] = a.R0;
        staged[lane * WordsPerLane + 1] = a.R1;
        staged[lane * WordsPerLane + 2] = a.R2;
        staged[lane * WordsPerLane + 3] = a.R3;
        staged[lane * WordsPerLane + 4] = b.R0;
        staged[lane * WordsPerLane + 5] = b.R1;
        Warp.Barrier();
        return staged;
    }

    /// <summary>
    /// Word of the staged A operand that holds row (g or g + 8) and 4-element group kq (0..7 for
    /// 8-bit: k = 4kq..4kq+3), following the A fragment layout.
    /// </summary>
    private static uint AWord(ArrayView<uint> staged, int g, bool upperRows, int kq)
    {
        int ownerLane = g * 4 + (kq & 3);
        int register = (kq >= 4 ? 2 : 0) + (upperRows ? 1 : 0);
        return staged[ownerLane * WordsPerLane + register];
    }

    /// <summary>Word of the staged B operand for column n and group kq (same k grouping as A).</summary>
    private static uint BWord(ArrayView<uint> staged, int n, int kq)
    {
        int ownerLane = n * 4 + (kq & 3);
        return staged[ownerLane * WordsPerLane + 4 + (kq >= 4 ? 1 : 0)];
    }

    private static long DotS8(ArrayView<uint> staged, int g, int n, bool upperRows)
    {
        long sum = 0;
        for (int kq = 0; kq < 8; kq++)
        {
            uint aw = AWord(staged, g, upperRows, kq), bw = BWord(staged, n, kq);
            for (int i = 0; i < 4; i++)
                sum += (sbyte)(byte)(aw >> (8 * i)) * (sbyte)(byte)(bw >> (8 * i));
        }
        return sum;
    }

    private static double DotE4M3(ArrayView<uint> staged, int g, int n, bool upperRows)
    {
        double sum = 0;
        for (int kq = 0; kq < 8; kq++)
        {
            uint aw = AWord(staged, g, upperRows, kq), bw = BWord(staged, n, kq);
            for (int i = 0; i < 4; i++)
                sum += (double)DeviceConvert.DecodeE4M3((aw >> (8 * i)) & 0xFF) * DeviceConvert.DecodeE4M3((bw >> (8 * i)) & 0xFF);
        }
        return sum;
    }

    /// <summary>f16 k16 product: the 16 k values come in 8 pairs; pair kp lives where 8-bit group kq = kp would.</summary>
    private static double DotF16(ArrayView<uint> staged, int g, int n, bool upperRows)
    {
        double sum = 0;
        for (int kp = 0; kp < 8; kp++)
        {
            uint aw = AWord(staged, g, upperRows, kp), bw = BWord(staged, n, kp);
            sum += (double)DeviceConvert.Fp16ToFloatEmulated((ushort)aw) * DeviceConvert.Fp16ToFloatEmulated((ushort)bw);
            sum += (double)DeviceConvert.Fp16ToFloatEmulated((ushort)(aw >> 16)) * DeviceConvert.Fp16ToFloatEmulated((ushort)(bw >> 16));
        }
        return sum;
    }

    /// <summary>bf16 k16 product, same pairing as <see cref="DotF16"/>: each bf16 product (16 significant bits) is exact in double.</summary>
    private static double DotBf16(ArrayView<uint> staged, int g, int n, bool upperRows)
    {
        double sum = 0;
        for (int kp = 0; kp < 8; kp++)
        {
            uint aw = AWord(staged, g, upperRows, kp), bw = BWord(staged, n, kp);
            sum += (double)DeviceConvert.Bf16ToFloat((ushort)aw) * DeviceConvert.Bf16ToFloat((ushort)bw);
            sum += (double)DeviceConvert.Bf16ToFloat((ushort)(aw >> 16)) * DeviceConvert.Bf16ToFloat((ushort)(bw >> 16));
        }
        return sum;
    }

    private static uint AddToFp16Pair(uint pair, double low, double high)
    {
        double lo = DeviceConvert.Fp16ToFloatEmulated((ushort)pair) + low;
        double hi = DeviceConvert.Fp16ToFloatEmulated((ushort)(pair >> 16)) + high;
        return DeviceConvert.FloatToFp16Emulated((float)lo) | ((uint)DeviceConvert.FloatToFp16Emulated((float)hi) << 16);
    }
}
