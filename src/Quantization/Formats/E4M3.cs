namespace SageAttn.Quantization.Formats;

/// <summary>
/// The FP8 e4m3 ("e4m3fn") format as the tensor cores read it: 1 sign bit, 4 exponent bits (bias 7),
/// 3 mantissa bits, no infinities, NaN = S.1111.111, largest finite 448, smallest subnormal 2^-9.
/// </summary>
/// <remarks>
/// <see cref="Encode"/> matches the hardware conversion <c>cvt.rn.satfinite.e4m3x2.f32</c> exactly: round to
/// nearest with ties to even, magnitudes past 448 (infinities included) saturate to ±448, NaN stays NaN.
/// This managed codec is also what the device conversion runs on the CPU accelerator.
/// </remarks>
public static class E4M3
{
    /// <summary>Largest finite e4m3 magnitude.</summary>
    public const float MaxFinite = 448f;

    /// <summary>The canonical NaN code (positive sign).</summary>
    public const byte NaN = 0x7F;

    private const int ExponentBias = 7;
    private const int MantissaBits = 3;
    private const int MinNormalExponent = 1 - ExponentBias; // -6

    private static readonly float[] DecodeTable = BuildDecodeTable();

    /// <summary>The value of an e4m3 code (NaN for the two NaN codes).</summary>
    public static float Decode(byte code) => DecodeTable[code];

    /// <summary>Rounds <paramref name="value"/> to e4m3 (nearest, ties to even, saturating to ±448).</summary>
    public static byte Encode(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        byte sign = (byte)((bits >> 24) & 0x80);
        if (float.IsNaN(value))
            return (byte)(sign | NaN);

        double magnitude = Math.Abs((double)value);
        if (magnitude >= MaxFinite)
            return (byte)(sign | 0x7E);
        if (magnitude == 0)
            return sign;

        // The quantum (distance between neighbours) at this magnitude; subnormals share the quantum of
        // the smallest normal binade. Scaling by a power of two is exact, so one rounding happens.
        int exponent = Math.Max(Math.ILogB(magnitude), MinNormalExponent);
        double quantum = Math.ScaleB(1.0, exponent - MantissaBits);
        double steps = Math.Round(magnitude / quantum, MidpointRounding.ToEven);
        if (steps == 0)
            return sign;

        double rounded = steps * quantum; // may have moved up one binade (steps == 16): still exact
        int roundedExponent = Math.ILogB(rounded);
        if (roundedExponent < MinNormalExponent)
            return (byte)(sign | (int)steps); // subnormal: code = value / 2^-9

        int mantissa = (int)(Math.ScaleB(rounded, -roundedExponent) * 8) - 8;
        return (byte)(sign | ((roundedExponent + ExponentBias) << MantissaBits) | mantissa);
    }

    private static float[] BuildDecodeTable()
    {
        var table = new float[256];
        for (int code = 0; code < 256; code++)
        {
            int sign = code >> 7;
            int exponent = (code >> MantissaBits) & 0xF;
            int mantissa = code & 0x7;
            double magnitude;
            if (exponent == 0xF && mantissa == 0x7)
                magnitude = double.NaN;
            else if (exponent == 0)
                magnitude = Math.ScaleB(mantissa, MinNormalExponent - MantissaBits);
            else
                magnitude = Math.ScaleB(8 + mantissa, exponent - ExponentBias - MantissaBits);
            table[code] = (float)(sign == 1 ? -magnitude : magnitude);
        }
        return table;
    }
}
