using SageAttn.Quantization.Formats;

namespace SageAttn.Tests.Quantization;

/// <summary>
/// The e4m3 codec against an independent brute-force rounding (nearest of all 254 finite codes, ties to
/// the even code), and the device emulation against the codec.
/// </summary>
public sealed class E4M3Tests
{
    private static readonly byte[] FiniteCodes = Enumerable.Range(0, 256).Select(c => (byte)c).Where(c => (c & 0x7F) != 0x7F).ToArray();

    /// <summary>Nearest finite code by exhaustive search over the magnitudes; ties go to the even code; the sign is copied.</summary>
    private static byte BruteForce(float value)
    {
        byte sign = (byte)(float.IsNegative(value) ? 0x80 : 0);
        float magnitude = Math.Abs(value);
        byte best = 0;
        double bestDistance = double.MaxValue;
        foreach (byte code in FiniteCodes.Where(c => c < 0x80))
        {
            double distance = Math.Abs(E4M3.Decode(code) - (double)magnitude);
            if (distance < bestDistance || (distance == bestDistance && (code & 1) == 0))
            {
                best = code;
                bestDistance = distance;
            }
        }
        return (byte)(sign | best);
    }

    [Fact]
    public void EveryCodeRoundTrips()
    {
        for (int code = 0; code < 256; code++)
        {
            float value = E4M3.Decode((byte)code);
            if ((code & 0x7F) == 0x7F)
            {
                Assert.True(float.IsNaN(value), $"code {code:X2} must be NaN");
                Assert.Equal(0x7F, E4M3.Encode(value) & 0x7F);
                continue;
            }
            Assert.Equal((byte)code, E4M3.Encode(value));
            Assert.Equal((uint)code, DeviceConvert.EncodeE4M3Emulated(value));
            Assert.Equal(value, DeviceConvert.DecodeE4M3((uint)code));
        }
    }

    [Fact]
    public void DecodesKnownValues()
    {
        Assert.Equal(448f, E4M3.Decode(0x7E));
        Assert.Equal(-448f, E4M3.Decode(0xFE));
        Assert.Equal(1f, E4M3.Decode(0x38));
        Assert.Equal(MathF.Pow(2, -9), E4M3.Decode(0x01));
        Assert.Equal(MathF.Pow(2, -6), E4M3.Decode(0x08));
        Assert.Equal(1.125f, E4M3.Decode(0x39));
    }

    [Fact]
    public void MidpointsRoundToEven()
    {
        var positive = FiniteCodes.Where(c => c < 0x80).OrderBy(c => E4M3.Decode(c)).ToArray();
        for (int i = 0; i + 1 < positive.Length; i++)
        {
            byte lo = positive[i], hi = positive[i + 1];
            float mid = (E4M3.Decode(lo) + E4M3.Decode(hi)) / 2; // exact in float
            byte even = (lo & 1) == 0 ? lo : hi;
            Assert.Equal(even, E4M3.Encode(mid));
            Assert.Equal(even, (byte)DeviceConvert.EncodeE4M3Emulated(mid));
            Assert.Equal((byte)(even | 0x80), E4M3.Encode(-mid));
            // Just off the midpoint goes to the nearer neighbour.
            Assert.Equal(lo, E4M3.Encode(MathF.BitDecrement(mid)));
            Assert.Equal(hi, E4M3.Encode(MathF.BitIncrement(mid)));
        }
    }

    [Theory]
    [InlineData(448f, 0x7E)]
    [InlineData(464f, 0x7E)]
    [InlineData(479.9f, 0x7E)]
    [InlineData(1e9f, 0x7E)]
    [InlineData(float.PositiveInfinity, 0x7E)]
    [InlineData(float.NegativeInfinity, 0xFE)]
    [InlineData(-500f, 0xFE)]
    [InlineData(1e-30f, 0x00)]
    [InlineData(-1e-30f, 0x80)]
    public void SaturatesAndUnderflows(float value, int expected)
    {
        Assert.Equal((byte)expected, E4M3.Encode(value));
        Assert.Equal((uint)expected, DeviceConvert.EncodeE4M3Emulated(value));
    }

    [Fact]
    public void NaNStaysNaN()
    {
        Assert.True(float.IsNaN(E4M3.Decode(E4M3.Encode(float.NaN))));
        Assert.True(float.IsNaN(E4M3.Decode((byte)DeviceConvert.EncodeE4M3Emulated(float.NaN))));
    }

    [Fact]
    public void RandomValuesMatchBruteForceAndEmulation()
    {
        var random = new Random(7);
        for (int i = 0; i < 20000; i++)
        {
            float value = (float)(Math.Pow(2, random.NextDouble() * 24 - 14) * (random.Next(2) == 0 ? -1 : 1));
            byte expected = BruteForce(value);
            Assert.Equal(expected, E4M3.Encode(value));
            Assert.Equal((uint)expected, DeviceConvert.EncodeE4M3Emulated(value));
        }
    }

    [Fact]
    public void HalfConversionsMatchTheRuntime()
    {
        var random = new Random(11);
        for (int i = 0; i < 20000; i++)
        {
            float value = (float)(Math.Pow(2, random.NextDouble() * 44 - 28) * (random.Next(2) == 0 ? -1 : 1));
            Assert.Equal(HalfBits.FloatToFp16(value), DeviceConvert.FloatToFp16Emulated(value));
            ushort bits = (ushort)random.Next(65536);
            float decoded = DeviceConvert.Fp16ToFloatEmulated(bits);
            float expected = HalfBits.Fp16ToFloat(bits);
            Assert.True(decoded.Equals(expected), $"fp16 {bits:X4}: {decoded} vs {expected}");
        }
    }
}
