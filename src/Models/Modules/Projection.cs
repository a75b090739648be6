using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SageAttn.Models.Modules;

/// <summary>
/// y = x·Wᵀ (+ b): a linear layer whose parameters are created uninitialized on the target device and dtype.
/// </summary>
/// <remarks>
/// Not <c>nn.Linear</c>: that one initializes its weight (kaiming) where it is created, which for an 8B model is a
/// wasted pass over 16 GB before the real or seeded weights overwrite it. Fill these with
/// <see cref="Weights.RandomWeights"/> or <see cref="Weights.HfCheckpoint"/>.
/// </remarks>
public sealed class Projection : nn.Module<Tensor, Tensor>
{
    // Field names are the state-dict names ("weight", "bias"), as in nn.Linear.
    private readonly Parameter weight;
    private readonly Parameter? bias;

    /// <summary>A projection from <paramref name="inFeatures"/> to <paramref name="outFeatures"/> (weight [out, in]).</summary>
    public Projection(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device) : base(nameof(Projection))
    {
        weight = new Parameter(torch.empty([outFeatures, inFeatures], dtype, device), requires_grad: false);
        bias = hasBias ? new Parameter(torch.empty([outFeatures], dtype, device), requires_grad: false) : null;
        RegisterComponents();
    }

    /// <summary>The weight [out, in].</summary>
    public Parameter Weight => weight;

    /// <summary>The bias [out], or null.</summary>
    public Parameter? Bias => bias;

    /// <summary>x [.., in] → [.., out], in x's dtype.</summary>
    public override Tensor forward(Tensor input) => nn.functional.linear(input, weight, bias);
}
