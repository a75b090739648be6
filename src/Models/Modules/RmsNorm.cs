using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SageAttn.Models.Modules;

/// <summary>
/// RMSNorm over the last dimension as the Hugging Face Qwen2/Qwen3/ERNIE-4.5 models compute it:
/// x / √(mean(x²) + ε) in float32, cast back to the input dtype, then times the weight.
/// </summary>
/// <remarks>The cast before the weight multiply (not after) matches HF, so bf16 outputs agree bit for bit in layout.</remarks>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    /// <summary>A norm over <paramref name="size"/> channels with weight initialized to one.</summary>
    public RmsNorm(long size, double eps, ScalarType dtype, Device device) : base(nameof(RmsNorm))
    {
        weight = new Parameter(torch.ones([size], dtype, device), requires_grad: false);
        _eps = eps;
        RegisterComponents();
    }

    /// <summary>The per-channel gain [size].</summary>
    public Parameter Weight => weight;

    /// <summary>x [.., size] → the same shape and dtype.</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = torch.NewDisposeScope();
        var x = input.to(ScalarType.Float32);
        var meanSquare = x.square().mean([-1], keepdim: true);
        // Not in place: for a float32 input, x is the input itself.
        var normalized = x * meanSquare.add_(_eps).rsqrt_();
        return normalized.to(input.dtype).mul_(weight).MoveToOuterDisposeScope();
    }
}
