using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// Rotary position embedding tables: cos and sin of position · θ^(−2i/D) for every position below
/// <see cref="MaxPositions"/> and pair i &lt; D/2, Float32 [MaxPositions, D/2] on one device, and the rotation itself.
/// </summary>
/// <remarks>
/// The angles are computed in float64 and rounded once: at position 32K the angle is ~3·10⁴ rad, where a float32
/// product (what many Python implementations do) is already off by ~10⁻³ rad. The rotation runs in float32 and the
/// result is cast back to the input dtype.
/// </remarks>
public sealed class RotaryTable : IDisposable
{
    /// <summary>Tables for heads of <paramref name="headDim"/> channels, positions 0 .. <paramref name="maxPositions"/> − 1, base <paramref name="theta"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="headDim"/> is not positive and even, <paramref name="maxPositions"/> is not positive, or <paramref name="theta"/> is not above 1.</exception>
    public RotaryTable(int headDim, int maxPositions, double theta, Device? device = null)
    {
        if (headDim <= 0 || headDim % 2 != 0)
            throw new ArgumentException($"headDim must be positive and even, got {headDim}.", nameof(headDim));
        if (maxPositions <= 0)
            throw new ArgumentException($"maxPositions must be positive, got {maxPositions}.", nameof(maxPositions));
        if (!(theta > 1) || double.IsInfinity(theta))
            throw new ArgumentException($"theta must be a finite number above 1, got {theta}.", nameof(theta));
        HeadDim = headDim;
        MaxPositions = maxPositions;
        Theta = theta;
        int half = headDim / 2;
        var cos = new float[(long)maxPositions * half];
        var sin = new float[cos.Length];
        for (int i = 0; i < half; i++)
        {
            double inverseFrequency = Math.Pow(theta, -2.0 * i / headDim);
            for (int p = 0; p < maxPositions; p++)
            {
                double angle = p * inverseFrequency;
                cos[(long)p * half + i] = (float)Math.Cos(angle);
                sin[(long)p * half + i] = (float)Math.Sin(angle);
            }
        }

        using var cosHost = torch.tensor(cos, [maxPositions, half]);
        using var sinHost = torch.tensor(sin, [maxPositions, half]);
        // Detached: the tables outlive any dispose scope they are built in.
        Cos = cosHost.to(device ?? torch.CPU).DetachFromDisposeScope();
        Sin = sinHost.to(device ?? torch.CPU).DetachFromDisposeScope();
        Device = Cos.device;
    }

    /// <summary>Tables for a backend config's head dim, positions and θ.</summary>
    public static RotaryTable For(AttentionBackendConfig config, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new RotaryTable(config.HeadDim, config.MaxPositions, config.RopeTheta, device);
    }

    /// <summary>Channels per head.</summary>
    public int HeadDim { get; }

    /// <summary>Positions covered (0 .. MaxPositions − 1).</summary>
    public int MaxPositions { get; }

    /// <summary>Base θ.</summary>
    public double Theta { get; }

    /// <summary>Device of the tables (with its index, e.g. cuda:0).</summary>
    public Device Device { get; }

    /// <summary>cos(position · θ^(−2i/D)), Float32 [MaxPositions, D/2].</summary>
    public Tensor Cos { get; }

    /// <summary>sin(position · θ^(−2i/D)), Float32 [MaxPositions, D/2].</summary>
    public Tensor Sin { get; }

    /// <summary>The table rows of <paramref name="positions"/> (int64 [T] on the table's device): cos and sin, Float32 [T, D/2].</summary>
    public (Tensor Cos, Tensor Sin) Gather(Tensor positions) => (Cos.index_select(0, positions), Sin.index_select(0, positions));

    /// <summary>
    /// Rotates <paramref name="x"/> ([T, heads, D]) by the angles whose cos and sin are <paramref name="cos"/> and
    /// <paramref name="sin"/> ([T, D/2] Float32, one row per token, from <see cref="Gather"/>), pairing channels as
    /// <paramref name="style"/> says. Returns a new contiguous tensor in x's dtype.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin, RopeStyle style)
    {
        using var scope = torch.NewDisposeScope();
        long d = x.shape[^1], half = d / 2;
        var c = cos.unsqueeze(-2);
        var s = sin.unsqueeze(-2);
        var x32 = x.to(ScalarType.Float32);
        Tensor rotated;
        if (style == RopeStyle.Neox)
        {
            var x1 = x32.narrow(-1, 0, half);
            var x2 = x32.narrow(-1, half, half);
            rotated = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1);
        }
        else
        {
            // Pairs (2i, 2i + 1): view the last dim as [D/2, 2] and rotate each (even, odd) pair.
            long last = x32.dim() - 1;
            var pairs = x32.unflatten(last, [half, 2]);
            var even = pairs.select(-1, 0);
            var odd = pairs.select(-1, 1);
            rotated = torch.stack([even * c - odd * s, odd * c + even * s], -1).flatten(last);
        }

        return scope.MoveToOuter(rotated.to(x.dtype));
    }

    /// <summary><see cref="Apply(Tensor, Tensor, Tensor, RopeStyle)"/> at <paramref name="positions"/> (int64 [T]).</summary>
    public Tensor Apply(Tensor x, Tensor positions, RopeStyle style)
    {
        using var scope = torch.NewDisposeScope();
        var (cos, sin) = Gather(positions);
        return scope.MoveToOuter(Apply(x, cos, sin, style));
    }

    /// <summary>Releases the tables.</summary>
    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
