using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SageAttn.Models.Modules;

/// <summary>Token id → row of the embedding matrix [vocab, hidden], created uninitialized on the target device.</summary>
public sealed class TokenEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    /// <summary>An embedding of <paramref name="vocabSize"/> tokens of width <paramref name="hiddenSize"/>.</summary>
    public TokenEmbedding(int vocabSize, int hiddenSize, ScalarType dtype, Device device) : base(nameof(TokenEmbedding))
    {
        weight = new Parameter(torch.empty([vocabSize, hiddenSize], dtype, device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>The matrix [vocab, hidden] (also the LM head when embeddings are tied).</summary>
    public Parameter Weight => weight;

    /// <summary>ids [T] (int64 or int32, on the weight's device) → [T, hidden].</summary>
    public override Tensor forward(Tensor input) => weight.index_select(0, input);
}
