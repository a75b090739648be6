using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>RoPE tables and rotation, both channel pairings, against float64 written from the formula.</summary>
public sealed class RotaryTableTests
{
    [Theory]
    [InlineData(nameof(RopeStyle.Neox), 64, 1e4)]
    [InlineData(nameof(RopeStyle.Interleaved), 64, 5e5)]
    [InlineData(nameof(RopeStyle.Neox), 8, 1e6)]
    [InlineData(nameof(RopeStyle.Interleaved), 128, 1e6)]
    public void ApplyMatchesFloat64Formula(string styleName, int headDim, double theta)
    {
        var style = Enum.Parse<RopeStyle>(styleName);
        using var generator = new torch.Generator((ulong)headDim);
        long[] positions = [0, 1, 7, 100, 3999];
        int heads = 3;
        using var table = new RotaryTable(headDim, 4000, theta);
        using var x = torch.randn([positions.Length, heads, headDim], ScalarType.Float32, generator: generator);
        using var pos = torch.tensor(positions, ScalarType.Int64);

        using var rotated = table.Apply(x, pos, style);

        Assert.Equal(x.shape, rotated.shape);
        using var x64 = x.to(ScalarType.Float64);
        var xs = x64.data<double>().ToArray();
        using var r64 = rotated.to(ScalarType.Float64);
        var actual = r64.data<double>().ToArray();
        double maxError = 0;
        for (int t = 0; t < positions.Length; t++)
        for (int h = 0; h < heads; h++)
        {
            int offset = (t * heads + h) * headDim;
            var expected = EngineReference.Rope(xs.AsSpan(offset, headDim), (int)positions[t], theta, style);
            for (int c = 0; c < headDim; c++)
                maxError = Math.Max(maxError, Math.Abs(actual[offset + c] - expected[c]));
        }

        // float32 rotation of randn values (|x| ≲ 5): a few ulps of float32.
        Assert.True(maxError < 2e-5, $"max |rope − float64| = {maxError:E2}");
    }

    [Fact]
    public void StylesPairDifferentChannels()
    {
        using var generator = new torch.Generator(3);
        using var table = new RotaryTable(16, 16, 1e4);
        using var x = torch.randn([1, 1, 16], ScalarType.Float32, generator: generator);
        using var pos = torch.tensor(new long[] { 5 }, ScalarType.Int64);
        using var neox = table.Apply(x, pos, RopeStyle.Neox);
        using var interleaved = table.Apply(x, pos, RopeStyle.Interleaved);
        using var difference = (neox - interleaved).abs().max();
        Assert.True(difference.item<float>() > 0.1f, "NeoX and interleaved RoPE must not coincide");
        // Position 0 is the identity in both styles.
        using var zero = torch.tensor(new long[] { 0 }, ScalarType.Int64);
        using var identity = table.Apply(x, zero, RopeStyle.Interleaved);
        Assert.True(identity.allclose(x, rtol: 0, atol: 1e-7));
    }

    [Fact]
    public void TablesHoldCosAndSinOfThePairAngles()
    {
        using var table = new RotaryTable(8, 50, 1e4);
        Assert.Equal(new long[] { 50, 4 }, table.Cos.shape);
        Assert.Equal(ScalarType.Float32, table.Sin.dtype);
        // pair 1 of 4 at position 49: angle 49 · 10000^(−2/8) = 4.9.
        Assert.Equal(Math.Cos(4.9), table.Cos[49, 1].item<float>(), 6);
        Assert.Equal(Math.Sin(4.9), table.Sin[49, 1].item<float>(), 6);
    }

    [Fact]
    public void HalfInputsStayHalf()
    {
        using var table = new RotaryTable(64, 8, 1e6);
        using var x = torch.randn(2, 4, 64).to(ScalarType.BFloat16);
        using var pos = torch.tensor(new long[] { 3, 4 }, ScalarType.Int64);
        using var y = table.Apply(x, pos, RopeStyle.Neox);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
    }

    [Fact]
    public void InvalidTablesThrowNamingTheArgument()
    {
        Assert.Equal("headDim", Assert.Throws<ArgumentException>(() => new RotaryTable(7, 8, 1e4)).ParamName);
        Assert.Equal("maxPositions", Assert.Throws<ArgumentException>(() => new RotaryTable(8, 0, 1e4)).ParamName);
        Assert.Equal("theta", Assert.Throws<ArgumentException>(() => new RotaryTable(8, 8, 1.0)).ParamName);
    }
}
