using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using SageAttn.Cli.Bench;

namespace SageAttn.Tests.Cli.Bench;

/// <summary>The PNG writer and the chart, decoded here with an independent reader (bitwise CRC, zlib inflate).</summary>
public sealed class PngEncoderTests
{
    [Fact]
    public void Crc32MatchesTheStandardCheckValue()
    {
        Assert.Equal(0xCBF43926u, PngEncoder.Crc32(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(BitwiseCrc(Encoding.ASCII.GetBytes("IEND")), PngEncoder.Crc32(Encoding.ASCII.GetBytes("IEND")));
    }

    [Fact]
    public void SmallImageDecodesToItsPixels()
    {
        var canvas = new Canvas(7, 5);
        canvas.Set(3, 2, new Rgb(10, 20, 30));
        canvas.Set(6, 4, new Rgb(200, 0, 100));
        var (width, height, rgb) = Decode(canvas.ToPng());
        Assert.Equal(7, width);
        Assert.Equal(5, height);
        Assert.Equal(canvas.Pixels, rgb);
        Assert.Equal((10, 20, 30), Pixel(rgb, width, 3, 2));
        Assert.Equal((200, 0, 100), Pixel(rgb, width, 6, 4));
        Assert.Equal((255, 255, 255), Pixel(rgb, width, 0, 0));
    }

    [Fact]
    public void RejectsPixelCountsThatDoNotMatch()
    {
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(2, 2, new byte[11]));
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(0, 2, []));
    }

    [Fact]
    public void ChartHasOnePanelPerShapeKindAndDrawsItsSeries()
    {
        var results = new List<BenchResult>();
        foreach (bool causal in new[] { false, true })
        foreach (int hd in new[] { 64, 128 })
        foreach (int n in new[] { 1024, 4096, 16384 })
        {
            results.Add(new BenchResult("torch-sdpa", hd, n, 16384 / n, hd == 64 ? 64 : 32, BenchDType.Float16, causal, 1.0 + n / 4096.0, null, null, null, 0.001, 1, 0.001, 1));
            results.Add(new BenchResult("QkInt8PvFp8", hd, n, 16384 / n, hd == 64 ? 64 : 32, BenchDType.Float16, causal, 2.0 + n / 4096.0, 1.5, 0.3, 0.9, 0.04, 0.999, 0.04, 0.999));
        }
        var canvas = TopsChart.Render(results);
        // 4 panels in 2 columns and 2 rows, plus the legend band below them.
        Assert.Equal(2 * TopsChart.PanelWidth, canvas.Width);
        Assert.True(canvas.Height > 2 * TopsChart.PanelHeight);
        var (width, height, rgb) = Decode(canvas.ToPng());
        Assert.Equal(canvas.Width, width);
        Assert.Equal(canvas.Height, height);
        // The second series' colour (blue) is on the image: the Sage lines were drawn.
        Assert.Contains(Enumerable.Range(0, width * height), i => rgb[3 * i] == 31 && rgb[3 * i + 1] == 119 && rgb[3 * i + 2] == 180);
        Assert.Equal(500, TopsChart.NiceCeiling(420));
        Assert.Equal(600, TopsChart.NiceCeiling(501));
        Assert.Equal(800, TopsChart.NiceCeiling(630));
        Assert.Equal(1, TopsChart.NiceCeiling(0));
    }

    /// <summary>Checks the signature, every chunk's CRC, IHDR and IEND; returns the inflated, unfiltered pixels.</summary>
    private static (int Width, int Height, byte[] Rgb) Decode(byte[] png)
    {
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        int offset = 8, width = 0, height = 0;
        var idat = new MemoryStream();
        var types = new List<string>();
        while (offset < png.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            string type = Encoding.ASCII.GetString(png, offset + 4, 4);
            var typeAndData = png.AsSpan(offset + 4, 4 + length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset + 8 + length));
            Assert.Equal(BitwiseCrc(typeAndData), crc);
            var data = png.AsSpan(offset + 8, length);
            if (type == "IHDR")
            {
                Assert.Equal(13, length);
                width = BinaryPrimitives.ReadInt32BigEndian(data);
                height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                Assert.Equal(8, data[8]);  // bit depth
                Assert.Equal(2, data[9]);  // RGB
                Assert.Equal(0, data[10] | data[11] | data[12]);
            }
            else if (type == "IDAT")
            {
                idat.Write(data);
            }
            types.Add(type);
            offset += 12 + length;
        }
        Assert.Equal("IHDR", types[0]);
        Assert.Equal("IEND", types[^1]);
        idat.Position = 0;
        using var inflated = new MemoryStream();
        using (var zlib = new ZLibStream(idat, CompressionMode.Decompress))
            zlib.CopyTo(inflated);
        var raw = inflated.ToArray();
        Assert.Equal(height * (1 + 3 * width), raw.Length);
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
        {
            Assert.Equal(0, raw[y * (1 + 3 * width)]); // filter type none
            Array.Copy(raw, y * (1 + 3 * width) + 1, rgb, y * 3 * width, 3 * width);
        }
        return (width, height, rgb);
    }

    private static (int, int, int) Pixel(byte[] rgb, int width, int x, int y) =>
        (rgb[(y * width + x) * 3], rgb[(y * width + x) * 3 + 1], rgb[(y * width + x) * 3 + 2]);

    /// <summary>CRC-32 bit by bit, straight from the PNG specification (no table).</summary>
    private static uint BitwiseCrc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }
}
