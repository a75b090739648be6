using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Modules;

/// <summary>The gated MLP of all three families: down(silu(gate(x)) · up(x)), no bias.</summary>
public sealed class SwiGluMlp : nn.Module<Tensor, Tensor>
{
    // Field names are the Hugging Face sub-module names.
    private readonly Projection gate_proj;
    private readonly Projection up_proj;
    private readonly Projection down_proj;

    /// <summary>An MLP hidden → intermediate → hidden.</summary>
    public SwiGluMlp(int hiddenSize, int intermediateSize, ScalarType dtype, Device device) : base(nameof(SwiGluMlp))
    {
        gate_proj = new Projection(hiddenSize, intermediateSize, hasBias: false, dtype, device);
        up_proj = new Projection(hiddenSize, intermediateSize, hasBias: false, dtype, device);
        down_proj = new Projection(intermediateSize, hiddenSize, hasBias: false, dtype, device);
        RegisterComponents();
    }

    /// <summary>x [T, hidden] → [T, hidden]. Works in place on the gate activations so only two [T, intermediate] tensors are live.</summary>
    public override Tensor forward(Tensor input)
    {
        using var gate = gate_proj.forward(input);
        using (var up = up_proj.forward(input))
            nn.functional.silu(gate, inplace: true).mul_(up);
        return down_proj.forward(gate);
    }
}
