using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Weights;

/// <summary>Seeded random weights with the model's real shapes, written in place on its device (no host round trip).</summary>
public static class RandomWeights
{
    /// <summary>
    /// Fills every parameter of <paramref name="model"/> from <paramref name="seed"/>: each matrix [out, in] (the
    /// embedding included) with N(0, 1/in), biases with N(0, 0.1²), norm gains with 1 + N(0, 0.1²).
    /// </summary>
    /// <remarks>
    /// <para>std = 1/√in makes every projection map unit-RMS inputs to unit-RMS outputs at any width (0.016 at hidden
    /// 4096, close to the usual 0.02; 0.125 for the tiny test models), so attention scores and logits have a realistic
    /// spread rather than a flat one that would hide attention errors. Norm gains are not exactly one (unlike a fresh
    /// HF model, like a trained one) so a checkpoint test can tell them apart.</para>
    /// <para>Deterministic for a given seed, device and dtype: it seeds torch's global generators
    /// (<c>torch.manual_seed</c>, CPU and CUDA) and draws in state-dict order. CPU and CUDA draw different numbers.</para>
    /// </remarks>
    public static void Initialize(DecoderModel model, long seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var noGrad = torch.no_grad();
        torch.random.manual_seed(seed);
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (parameter.dim() == 2)
                parameter.normal_(0, 1 / Math.Sqrt(parameter.shape[1]));
            else if (name.EndsWith(".bias", StringComparison.Ordinal))
                parameter.normal_(0, 0.1);
            else
                parameter.normal_(1, 0.1);
        }
    }
}
