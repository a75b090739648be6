using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>The validated sizes of one attention call and the padded sizes of its quantized tensors.</summary>
public sealed record AttentionShape
{
    public int Batch { get; }
    public int HeadsQ { get; }
    public int HeadsKv { get; }
    public int Nq { get; }
    public int Nk { get; }
    public int HeadDim { get; }
    public int PaddedHeadDim => SageConstants.PaddedHeadDim(HeadDim);
    public int NqPad => SageConstants.RoundUp(Nq, SageConstants.QTileRows);
    public int NkPad => SageConstants.RoundUp(Nk, SageConstants.KBlockKeys);
    public int QTiles => NqPad / SageConstants.QTileRows;
    public int KBlocks => NkPad / SageConstants.KBlockKeys;
    public int KStatsChunks => (Nk + SageConstants.StatsChunkTokens - 1) / SageConstants.StatsChunkTokens;

    /// <summary>Checks the sizes of Q [B, Hq, Nq, D] and K/V [B, Hkv, Nk, D].</summary>
    /// <exception cref="ArgumentException">A size is out of range, naming the argument.</exception>
    public AttentionShape(int batch, int headsQ, int headsKv, int nq, int nk, int headDim)
    {
        if (batch <= 0) throw new ArgumentException($"batch must be positive, got {batch}.", "q");
        if (headsQ <= 0) throw new ArgumentException($"query heads must be positive, got {headsQ}.", "q");
        if (headsKv <= 0) throw new ArgumentException($"key/value heads must be positive, got {headsKv}.", "k");
        if (headsQ % headsKv != 0)
            throw new ArgumentException($"query heads ({headsQ}) must be a multiple of key/value heads ({headsKv}) for grouped-query attention.", "k");
        if (nq <= 0) throw new ArgumentException($"query length must be positive, got {nq}.", "q");
        if (nk <= 0) throw new ArgumentException($"key length must be positive, got {nk}.", "k");
        if (headDim <= 0 || headDim > 128)
            throw new ArgumentException($"head_dim must be in 1..128 (64 and 128 run natively, others are zero-padded), got {headDim}.", "q");
        Batch = batch; HeadsQ = headsQ; HeadsKv = headsKv; Nq = nq; Nk = nk; HeadDim = headDim;
        // Quantized tensors are indexed with 32-bit element counts inside a head and 64-bit across heads.
        if ((long)NkPad * PaddedHeadDim > int.MaxValue || (long)NqPad * PaddedHeadDim > int.MaxValue)
            throw new ArgumentException("sequence too long: one head's quantized tensor would exceed 2^31 elements.", "q");
    }

    /// <summary>Checks that Q, K and V (each as batch, heads, tokens, head_dim) fit together, and returns their shape.</summary>
    /// <exception cref="ArgumentException">Mismatched or out-of-range sizes, naming the tensor.</exception>
    public static AttentionShape Of((int Batch, int Heads, int Tokens, int HeadDim) q,
        (int Batch, int Heads, int Tokens, int HeadDim) k, (int Batch, int Heads, int Tokens, int HeadDim) v)
    {
        if (k.Batch != q.Batch || v.Batch != q.Batch)
            throw new ArgumentException($"batch sizes differ: q {q.Batch}, k {k.Batch}, v {v.Batch}.", nameof(k));
        if (k.HeadDim != q.HeadDim || v.HeadDim != q.HeadDim)
            throw new ArgumentException($"head_dim differs: q {q.HeadDim}, k {k.HeadDim}, v {v.HeadDim}.", nameof(k));
        if (v.Heads != k.Heads || v.Tokens != k.Tokens)
            throw new ArgumentException($"v [{v.Heads} heads, {v.Tokens} tokens] must match k [{k.Heads}, {k.Tokens}].", nameof(v));
        return new AttentionShape(q.Batch, q.Heads, k.Heads, q.Tokens, k.Tokens, q.HeadDim);
    }

    /// <summary>Checks non-negative strides and that the last element [B-1, H-1, N-1, D-1] lies inside <paramref name="available"/> elements.</summary>
    /// <exception cref="ArgumentException">Names <paramref name="name"/>.</exception>
    public static void CheckExtent(int batch, int heads, int tokens, int headDim, long strideBatch, long strideHead, long strideToken,
        long available, string name)
    {
        if (strideBatch < 0 || strideHead < 0 || strideToken < 0)
            throw new ArgumentException("strides must be non-negative.", name);
        long last = (batch - 1) * strideBatch + (heads - 1) * strideHead + (tokens - 1) * strideToken + headDim;
        if (last > available)
            throw new ArgumentException($"the strides reach element {last} but the tensor holds {available}.", name);
    }
}
