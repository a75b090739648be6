namespace SageAttn.Cli.Bench;

/// <summary>An 8-bit RGB colour.</summary>
public readonly record struct Rgb(byte R, byte G, byte B);

/// <summary>
/// An RGB pixel buffer with the few primitives a line chart needs: rectangles, (dashed, thick) lines, square
/// markers and bitmap-font text. Drawing outside the buffer is clipped.
/// </summary>
public sealed class Canvas
{
    /// <summary>A white canvas of the given size.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public Canvas(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 3];
        Array.Fill(Pixels, (byte)255);
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>Row-major RGB triplets.</summary>
    public byte[] Pixels { get; }

    public void Set(int x, int y, Rgb c)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
            return;
        int i = (y * Width + x) * 3;
        Pixels[i] = c.R;
        Pixels[i + 1] = c.G;
        Pixels[i + 2] = c.B;
    }

    public Rgb Get(int x, int y)
    {
        int i = (y * Width + x) * 3;
        return new Rgb(Pixels[i], Pixels[i + 1], Pixels[i + 2]);
    }

    public void FillRect(int x, int y, int width, int height, Rgb c)
    {
        for (int yy = y; yy < y + height; yy++)
            for (int xx = x; xx < x + width; xx++)
                Set(xx, yy, c);
    }

    /// <summary>A Bresenham line, <paramref name="thickness"/> pixels wide; <paramref name="dash"/> &gt; 0 draws dash pixels on, dash off.</summary>
    public void Line(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1, int dash = 0)
    {
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0);
        int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy, step = 0;
        int lo = -(thickness - 1) / 2, hi = thickness / 2;
        while (true)
        {
            if (dash <= 0 || step / dash % 2 == 0)
                FillRect(x0 + lo, y0 + lo, hi - lo + 1, hi - lo + 1, c);
            step++;
            if (x0 == x1 && y0 == y1)
                break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }

    /// <summary>A filled square marker centred on (x, y).</summary>
    public void Marker(int x, int y, int radius, Rgb c) => FillRect(x - radius, y - radius, 2 * radius + 1, 2 * radius + 1, c);

    /// <summary>Text with its top-left corner at (x, y), each font pixel drawn as a <paramref name="scale"/>-sized square.</summary>
    public void Text(int x, int y, string text, Rgb c, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (int i = 0; i < text.Length; i++)
        {
            for (int gy = 0; gy < BitmapFont.GlyphHeight; gy++)
            for (int gx = 0; gx < BitmapFont.GlyphWidth; gx++)
            {
                if (BitmapFont.IsSet(text[i], gx, gy))
                    FillRect(x + (i * BitmapFont.Advance + gx) * scale, y + gy * scale, scale, scale, c);
            }
        }
    }

    /// <summary>The canvas as PNG bytes.</summary>
    public byte[] ToPng() => PngEncoder.Encode(Width, Height, Pixels);
}
