using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.SequenceParallel;

/// <summary>
/// Running merge of partial attention states (O_i, LSE_i) computed over disjoint key sets for the same queries:
/// LSE = log Σ exp(LSE_i) and O = Σ exp(LSE_i − LSE) · O_i — the online-softmax merge, exact up to FP32 rounding.
/// </summary>
/// <remarks>
/// Works on any device with torch ops (FP32 state). Outputs are [B, Hq, N, D] (HND) or [B, N, Hq, D] (NHD) as
/// sageattn returns them; LSEs are natural-log FP32 [B, Hq, N]. A −inf LSE (no visible key) weighs zero.
/// </remarks>
internal sealed class AttentionStateAccumulator : IDisposable
{
    private readonly bool _nhd;
    private Tensor? _output;
    private Tensor? _lse;

    public AttentionStateAccumulator(bool nhd) => _nhd = nhd;

    /// <summary>Whether any partial has been added.</summary>
    public bool IsEmpty => _output is null;

    /// <summary>Adds one partial state; takes ownership of neither tensor.</summary>
    public void Add(Tensor output, Tensor lse)
    {
        if (_output is null)
        {
            _output = output.to(ScalarType.Float32);
            _lse = lse.to(ScalarType.Float32);
            return;
        }

        using var scope = torch.NewDisposeScope();
        var merged = torch.logaddexp(_lse!, lse);
        // Rows where both states are empty stay −inf; exp(−inf − (−inf)) would be NaN, so guard the shift.
        var safe = torch.where(merged.isinf(), torch.zeros_like(merged), merged);
        var wOld = Weight(torch.exp(_lse! - safe));
        var wNew = Weight(torch.exp(lse.to(ScalarType.Float32) - safe));
        var next = _output * wOld + output.to(ScalarType.Float32) * wNew;
        _output.Dispose();
        _lse!.Dispose();
        _output = next.MoveToOuterDisposeScope();
        _lse = merged.MoveToOuterDisposeScope();
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

    /// <summary>[B, H, N] weights broadcast against the output's layout.</summary>
    private Tensor Weight(Tensor w) => _nhd ? w.permute(0, 2, 1).unsqueeze(-1) : w.unsqueeze(-1);
}
