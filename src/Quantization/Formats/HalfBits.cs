namespace SageAttn.Quantization.Formats;

/// <summary>
/// Exact conversions between float and the 16-bit patterns of fp16 and bf16, in managed code.
/// Both round to nearest, ties to even, like the hardware <c>cvt.rn</c> conversions.
/// </summary>
public static class HalfBits
{
    /// <summary>fp16 bits to float (exact).</summary>
    public static float Fp16ToFloat(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>float to fp16 bits, round to nearest even, overflow to infinity.</summary>
    public static ushort FloatToFp16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>bf16 bits to float (exact: bf16 is the upper half of a binary32).</summary>
    public static float Bf16ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>float to bf16 bits, round to nearest even; NaN stays a quiet NaN.</summary>
    public static ushort FloatToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((bits >> 16) | 0x40);
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }

    /// <summary>Decodes one element of either type.</summary>
    public static float ToFloat(ushort bits, TensorElementType type) =>
        type == TensorElementType.Float16 ? Fp16ToFloat(bits) : Bf16ToFloat(bits);

    /// <summary>Encodes one element of either type.</summary>
    public static ushort FromFloat(float value, TensorElementType type) =>
        type == TensorElementType.Float16 ? FloatToFp16(value) : FloatToBf16(value);
}
