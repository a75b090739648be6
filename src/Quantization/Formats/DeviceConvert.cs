using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Quantization.Formats;

/// <summary>
/// Number-format conversions usable inside kernels. On CUDA each is one PTX conversion instruction;
/// on ILGPU's CPU accelerator the same call runs an exact integer emulation of that instruction, so
/// the kernels that use them compute identical results on both.
/// </summary>
/// <remarks>
/// The emulations avoid System.Half, doubles and BCL math on purpose: ILGPU re-compiles kernel code for
/// the CPU accelerator and only plain integer and float arithmetic is guaranteed to translate.
/// </remarks>
public static class DeviceConvert
{
    /// <summary>fp16 bits to float (<c>cvt.f32.f16</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fp16ToFloat(ushort bits)
    {
        if (CudaAsm.IsSupported)
        {
            float result = 0;
            CudaAsm.Emit("cvt.f32.f16 %0, %1;", out result, (short)bits);
            return result;
        }
        return Fp16ToFloatEmulated(bits);
    }

    /// <summary>bf16 bits to float: a shift, exact everywhere.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Bf16ToFloat(ushort bits) => Interop.IntAsFloat((uint)bits << 16);

    /// <summary>Decodes an element of the given storage type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort bits, int elementType) =>
        elementType == (int)TensorElementType.Float16 ? Fp16ToFloat(bits) : Bf16ToFloat(bits);

    /// <summary>float to fp16 bits, round to nearest even (<c>cvt.rn.f16.f32</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToFp16(float value)
    {
        if (CudaAsm.IsSupported)
        {
            short result = 0;
            CudaAsm.Emit("cvt.rn.f16.f32 %0, %1;", out result, value);
            return (ushort)result;
        }
        return FloatToFp16Emulated(value);
    }

    /// <summary>float to bf16 bits, round to nearest even (<c>cvt.rn.bf16.f32</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FloatToBf16(float value)
    {
        if (CudaAsm.IsSupported)
        {
            short result = 0;
            CudaAsm.Emit("cvt.rn.bf16.f32 %0, %1;", out result, value);
            return (ushort)result;
        }
        uint bits = Interop.FloatAsInt(value);
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
            return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>Encodes an element of the given storage type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float value, int elementType) =>
        elementType == (int)TensorElementType.Float16 ? FloatToFp16(value) : FloatToBf16(value);

    /// <summary>
    /// Four floats to four e4m3 bytes (byte i = element i), with <c>cvt.rn.satfinite.e4m3x2.f32</c>:
    /// nearest even, saturating to ±448.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PackE4M3x4(float e0, float e1, float e2, float e3)
    {
        if (CudaAsm.IsSupported)
        {
            uint result = 0;
            // cvt ... d, a, b puts a in the upper byte of d, b in the lower one.
            CudaAsm.Emit(
                "{ .reg .b16 lo, hi; cvt.rn.satfinite.e4m3x2.f32 lo, %2, %1; cvt.rn.satfinite.e4m3x2.f32 hi, %4, %3; mov.b32 %0, {lo, hi}; }",
                out result, e0, e1, e2, e3);
            return result;
        }
        return EncodeE4M3Emulated(e0) | (EncodeE4M3Emulated(e1) << 8) | (EncodeE4M3Emulated(e2) << 16) | (EncodeE4M3Emulated(e3) << 24);
    }

    /// <summary>Two floats to packed fp16x2 (low half = <paramref name="low"/>), <c>cvt.rn.f16x2.f32</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PackFp16x2(float low, float high)
    {
        if (CudaAsm.IsSupported)
        {
            uint result = 0;
            CudaAsm.Emit("cvt.rn.f16x2.f32 %0, %1, %2;", out result, high, low);
            return result;
        }
        return FloatToFp16Emulated(low) | ((uint)FloatToFp16Emulated(high) << 16);
    }

    /// <summary>Two floats to packed bf16x2 (low half = <paramref name="low"/>), <c>cvt.rn.bf16x2.f32</c> (sm_80+).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PackBf16x2(float low, float high)
    {
        if (CudaAsm.IsSupported)
        {
            uint result = 0;
            CudaAsm.Emit("cvt.rn.bf16x2.f32 %0, %1, %2;", out result, high, low);
            return result;
        }
        return FloatToBf16(low) | ((uint)FloatToBf16(high) << 16);
    }

    /// <summary>Round to the nearest integer, ties to even (<c>cvt.rni.s32.f32</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int RoundToNearestEven(float value)
    {
        if (CudaAsm.IsSupported)
        {
            int result = 0;
            CudaAsm.Emit("cvt.rni.s32.f32 %0, %1;", out result, value);
            return result;
        }
        int truncated = (int)value;
        float fraction = value - truncated; // exact for |value| < 2^23
        float magnitude = fraction < 0 ? -fraction : fraction;
        int away = value < 0 ? -1 : 1;
        if (magnitude > 0.5f || (magnitude == 0.5f && (truncated & 1) != 0))
            truncated += away;
        return truncated;
    }

    /// <summary>The integer emulation of <c>cvt.f32.f16</c>.</summary>
    public static float Fp16ToFloatEmulated(ushort bits)
    {
        uint sign = (uint)(bits & 0x8000) << 16;
        int exponent = (bits >> 10) & 0x1F;
        uint mantissa = (uint)bits & 0x3FF;
        if (exponent == 0x1F)
            return Interop.IntAsFloat(sign | 0x7F800000u | (mantissa << 13));
        if (exponent == 0)
        {
            float subnormal = mantissa * (1f / 16777216f); // m * 2^-24, exact
            return sign != 0 ? -subnormal : subnormal;
        }
        return Interop.IntAsFloat(sign | (uint)(exponent + 112) << 23 | (mantissa << 13));
    }

    /// <summary>The integer emulation of <c>cvt.rn.f16.f32</c>.</summary>
    public static ushort FloatToFp16Emulated(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        uint sign = (bits >> 16) & 0x8000u;
        uint abs = bits & 0x7FFFFFFFu;
        if (abs > 0x7F800000u)
            return (ushort)(sign | 0x7E00u);
        if (abs >= 0x477FF000u) // rounds to 65536 or more: infinity
            return (ushort)(sign | 0x7C00u);
        int exponent = (int)(abs >> 23) - 127;
        if (exponent >= -14)
        {
            // Normal fp16: keep 10 of the 23 mantissa bits, round to nearest even on the 13 dropped.
            uint result = (uint)((exponent + 15) << 10) | ((abs >> 13) & 0x3FFu);
            uint dropped = abs & 0x1FFFu;
            if (dropped > 0x1000u || (dropped == 0x1000u && (result & 1u) != 0))
                result++;
            return (ushort)(sign | result);
        }
        if (exponent < -25)
            return (ushort)sign;
        // Subnormal fp16: value / 2^-24 rounded to nearest even.
        uint full = (abs & 0x7FFFFFu) | 0x800000u;
        int shift = -exponent - 1; // 14..24
        uint kept = full >> shift;
        uint rest = full & ((1u << shift) - 1u);
        uint half = 1u << (shift - 1);
        if (rest > half || (rest == half && (kept & 1u) != 0))
            kept++;
        return (ushort)(sign | kept);
    }

    /// <summary>The integer emulation of one lane of <c>cvt.rn.satfinite.e4m3x2.f32</c>.</summary>
    public static uint EncodeE4M3Emulated(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        uint sign = (bits >> 24) & 0x80u;
        uint abs = bits & 0x7FFFFFFFu;
        if (abs > 0x7F800000u)
            return sign | 0x7Fu;
        if (abs >= 0x43E00000u) // 448 and above (infinity too) saturate to the largest finite value
            return sign | 0x7Eu;
        int exponent = (int)(abs >> 23) - 127;
        uint mantissa = abs & 0x7FFFFFu;
        if (exponent < -6)
        {
            // Subnormal e4m3: code = value / 2^-9 rounded to nearest even (may round up to 8 = 2^-6).
            if (exponent < -11)
                return sign; // below a quarter of the smallest subnormal: rounds to zero
            uint full = mantissa | 0x800000u;
            int shift = 23 - (exponent + 9); // value / 2^-9 = full * 2^(exponent + 9 - 23)
            uint kept = full >> shift;
            uint rest = full & ((1u << shift) - 1u);
            uint half = 1u << (shift - 1);
            if (rest > half || (rest == half && (kept & 1u) != 0))
                kept++;
            return sign | kept;
        }
        uint keptMantissa = mantissa >> 20;
        uint dropped = mantissa & 0xFFFFFu;
        uint code = (uint)((exponent + 7) << 3) | keptMantissa;
        if (dropped > 0x80000u || (dropped == 0x80000u && (keptMantissa & 1u) != 0))
            code++; // a carry into the exponent is the right next code
        return sign | code;
    }

    /// <summary>Integer decode of an e4m3 byte (the emulations of the FP8 tensor-core products use it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float DecodeE4M3(uint code)
    {
        uint sign = (code & 0x80u) << 24;
        uint exponent = (code >> 3) & 0xFu;
        uint mantissa = code & 0x7u;
        if (exponent == 0)
        {
            float subnormal = mantissa * (1f / 512f);
            return sign != 0 ? -subnormal : subnormal;
        }
        if (exponent == 0xF && mantissa == 0x7)
            return Interop.IntAsFloat(0x7FC00000u);
        return Interop.IntAsFloat(sign | ((exponent + 120) << 23) | (mantissa << 20));
    }
}
