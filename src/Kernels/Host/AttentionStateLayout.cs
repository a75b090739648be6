using SageAttn.Kernels.Attention;

namespace SageAttn.Kernels.Host;

/// <summary>
/// Where S partial attention states and their merge live: partial outputs O [S, B, H, N, D] and the merged
/// output [B, H, N, D] addressed by element strides (channels contiguous), partial LSEs [S, B, H, N] and the merged
/// LSE [B, H, N] contiguous, natural log.
/// </summary>
/// <remarks>
/// Partials from separate attention calls over key chunks (sequence parallelism) are stacked along S; an HND
/// output [B, H, N, D] has strides (H·N·D, N·D, D), an NHD one [B, N, H, D] has (N·H·D, D, H·D).
/// </remarks>
/// <param name="Splits">S, the number of partial states per row.</param>
/// <param name="Batch">B.</param>
/// <param name="Heads">H.</param>
/// <param name="Tokens">N (query rows per head; 1 for decode).</param>
/// <param name="HeadDim">D.</param>
/// <param name="PartialStrideSplit">Elements between partials s and s + 1.</param>
/// <param name="PartialStrideBatch">Elements between batches of a partial.</param>
/// <param name="PartialStrideHead">Elements between heads of a partial.</param>
/// <param name="PartialStrideToken">Elements between tokens of a partial.</param>
/// <param name="OutStrideBatch">Elements between batches of the output.</param>
/// <param name="OutStrideHead">Elements between heads of the output.</param>
/// <param name="OutStrideToken">Elements between tokens of the output.</param>
public readonly record struct AttentionStateLayout(
    int Splits, int Batch, int Heads, int Tokens, int HeadDim,
    long PartialStrideSplit, long PartialStrideBatch, long PartialStrideHead, long PartialStrideToken,
    long OutStrideBatch, long OutStrideHead, long OutStrideToken)
{
    /// <summary>Query rows B · H · N.</summary>
    public long Rows => (long)Batch * Heads * Tokens;

    /// <summary>Contiguous [S, B, H, N, D] partials merged into a contiguous [B, H, N, D] output (HND).</summary>
    public static AttentionStateLayout Contiguous(int splits, int batch, int heads, int tokens, int headDim)
    {
        long token = headDim, head = (long)tokens * headDim, b = (long)heads * head;
        return new(splits, batch, heads, tokens, headDim, b * batch, b, head, token, b, head, token);
    }

    /// <summary>Checks sizes, strides and buffer lengths (in elements).</summary>
    /// <exception cref="ArgumentException">Names the offending argument: partials, partialLse, output, lse.</exception>
    public void Validate(long partialLength, long partialLseLength, long outputLength, long lseLength)
    {
        if (Splits < 1)
            throw new ArgumentException($"at least one partial state is needed, got {Splits}.", "partials");
        if (Batch < 1 || Heads < 1 || Tokens < 1 || HeadDim < 1)
            throw new ArgumentException($"sizes must be positive: B {Batch}, H {Heads}, N {Tokens}, D {HeadDim}.", "partials");
        if (Rows * HeadDim > (long)int.MaxValue * AttentionStateMergeKernel.Threads)
            throw new ArgumentException($"{Rows} rows × {HeadDim} channels exceed one launch.", "partials");
        CheckExtent(partialLength, Splits, PartialStrideSplit, PartialStrideBatch, PartialStrideHead, PartialStrideToken, "partials");
        CheckExtent(outputLength, 1, 0, OutStrideBatch, OutStrideHead, OutStrideToken, "output");
        if (partialLseLength < Splits * Rows)
            throw new ArgumentException($"partialLse needs {Splits * Rows} floats ([S, B, H, N]), has {partialLseLength}.", "partialLse");
        if (lseLength > 0 && lseLength < Rows)
            throw new ArgumentException($"lse needs {Rows} floats ([B, H, N]), has {lseLength}.", "lse");
    }

    /// <summary>The kernel parameters with default views (filled in by the caller).</summary>
    internal AttentionStateMergeParams ToParams(AttentionStateType partialType, AttentionStateType outputType, bool writeLse) => new()
    {
        PartialStrideSplit = PartialStrideSplit, PartialStrideBatch = PartialStrideBatch,
        PartialStrideHead = PartialStrideHead, PartialStrideToken = PartialStrideToken,
        OutStrideBatch = OutStrideBatch, OutStrideHead = OutStrideHead, OutStrideToken = OutStrideToken,
        Splits = Splits, Batch = Batch, Heads = Heads, Tokens = Tokens, HeadDim = HeadDim,
        PartialType = (int)partialType, OutputType = (int)outputType, WriteLse = writeLse ? 1 : 0,
    };

    /// <summary>Blocks of the merge launch.</summary>
    internal int GridBlocks => (int)((Rows * HeadDim + AttentionStateMergeKernel.Threads - 1) / AttentionStateMergeKernel.Threads);

    private void CheckExtent(long length, int splits, long strideSplit, long strideBatch, long strideHead, long strideToken, string name)
    {
        if (strideSplit < 0 || strideBatch < 0 || strideHead < 0 || strideToken < 0)
            throw new ArgumentException("strides must be non-negative.", name);
        long last = (splits - 1) * strideSplit + (Batch - 1) * strideBatch + (Heads - 1) * strideHead + (Tokens - 1) * strideToken + HeadDim;
        if (last > length)
            throw new ArgumentException($"{name} needs {last} elements for its sizes and strides, has {length}.", name);
    }
}
