using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.SequenceParallel;

/// <summary>
/// Running merge of partial attention states (O_i, LSE_i) of the same queries over disjoint key chunks, through
/// <see cref="AttentionMerge.merge_attention_states"/> with an FP32 running state.
/// </summary>
/// <remarks>
/// Why running instead of one merge at the end: a partition meets P key chunks, and keeping every partial alive until
/// the end would hold P outputs of its query chunk; the running state holds one (FP32, so repeated merging adds no
/// FP16 rounding).
/// </remarks>
internal sealed class AttentionStateAccumulator : IDisposable
{
    private readonly string _layout;
    private Tensor? _output;
    private Tensor? _lse;

    public AttentionStateAccumulator(string layout) => _layout = layout;

    /// <summary>Adds one partial state; takes ownership of neither tensor.</summary>
    public void Add(Tensor output, Tensor lse)
    {
        using var output32 = output.to(ScalarType.Float32);
        if (_output is null)
        {
            _output = output32.contiguous();
            _lse = lse.contiguous();
            if (ReferenceEquals(_lse, lse))
                _lse = lse.alias();
            return;
        }

        var (merged, mergedLse) = AttentionMerge.merge_attention_states([_output, output32], [_lse!, lse], _layout);
        _output.Dispose();
        _lse!.Dispose();
        _output = merged;
        _lse = mergedLse;
    }

    /// <summary>The merged output in <paramref name="dtype"/> and the merged LSE; the accumulator is empty afterwards.</summary>
    public (Tensor Output, Tensor Lse) Finish(ScalarType dtype)
    {
        if (_output is null)
            throw new InvalidOperationException("no partial attention state was added.");
        var output = _output.to(dtype);
        if (!ReferenceEquals(output, _output))
            _output.Dispose();
        var lse = _lse!;
        _output = null;
        _lse = null;
        return (output, lse);
    }

    public void Dispose()
    {
        _output?.Dispose();
        _lse?.Dispose();
    }
}
