using ILGPU;

namespace SageAttn.Quantization;

/// <summary>
/// Where one batch entry's tokens live: in the input (packed or dense) and in the padded quantized layouts.
/// </summary>
/// <remarks>Dense inputs: <c>Batch</c> = b, <c>TokenStart</c> = 0, <c>PaddedStart</c> = 0. Packed inputs:
/// <c>Batch</c> = 0 (one packed tensor), the rest from cu_seqlens (see <see cref="PackedSequences"/>).</remarks>
public struct SequenceSpan
{
    /// <summary>The batch index of the tensors' layouts (input, quantized Q/K/V, output, LSE): b, or 0 when packed.</summary>
    public int Batch;
    /// <summary>The sequence's first token in the input, output and LSE.</summary>
    public int TokenStart;
    /// <summary>The sequence's token count (clamped, never past the tensor's end or the max length).</summary>
    public int Length;
    /// <summary>The sequence's first row in the padded quantized tensors (a multiple of 64).</summary>
    public int PaddedStart;
}

/// <summary>
/// The sequences of a packed (varlen) batch, described by cu_seqlens on the device, or the dense mode.
/// Kernels call <see cref="Resolve"/> with the batch index of their grid, so one kernel serves both.
/// </summary>
/// <remarks>
/// <para>Packed layout: sequence s holds input tokens [cu[s], cu[s+1]) of a [T, H, D] tensor, and rows
/// [P(s), P(s) + roundup64(L(s))) of the padded quantized tensors with
/// P(s) = roundup64(cu[s]) + 64·s. The regions never overlap (roundup64(a + l) ≥ roundup64(a) + roundup64(l) − 64)
/// and end before <see cref="PaddedRows"/>(T, B) = roundup64(T) + 64·B, so the offsets come from cu_seqlens on
/// the device with no host read and no prefix sum of padded lengths.</para>
/// <para>cu_seqlens contents are trusted, as in FlashAttention, but every value is clamped: a start to [0, T],
/// an end to [start, T], a length to <see cref="MaxTokens"/>. Whatever cu_seqlens holds, no kernel reads or
/// writes outside its buffers; bad contents only give wrong numbers.</para>
/// </remarks>
public struct PackedSequences
{
    /// <summary>cu_seqlens, B + 1 int32 offsets; unused (any valid view) in dense mode.</summary>
    public ArrayView<int> CuSeqlens;
    /// <summary>1: packed sequences from <see cref="CuSeqlens"/>; 0: dense [B, H, N, D].</summary>
    public int Packed;
    /// <summary>T, the packed tensor's token count.</summary>
    public int TotalTokens;
    /// <summary>max_seqlen: the bound the launch grid was sized for; longer sequences are cut to it.</summary>
    public int MaxTokens;

    /// <summary>Packed sequences of a [T, H, D] tensor.</summary>
    public static PackedSequences Of(ArrayView<int> cuSeqlens, int totalTokens, int maxTokens) => new()
    {
        CuSeqlens = cuSeqlens, Packed = 1, TotalTokens = totalTokens, MaxTokens = maxTokens,
    };

    /// <summary>Dense mode; <paramref name="anyView"/> only gives the unused view a valid address.</summary>
    public static PackedSequences Dense(ArrayView<int> anyView) => new() { CuSeqlens = anyView };

    /// <summary>Rows of a padded quantized tensor holding <paramref name="totalTokens"/> tokens in <paramref name="batch"/> sequences.</summary>
    public static long PaddedRows(int totalTokens, int batch) =>
        (long)SageConstants.RoundUp(totalTokens, SageConstants.KBlockKeys) + (long)SageConstants.KBlockKeys * batch;

    /// <summary>The span of batch entry <paramref name="b"/>; <paramref name="denseTokens"/> is N in dense mode.</summary>
    public readonly SequenceSpan Resolve(int b, int denseTokens)
    {
        var span = default(SequenceSpan);
        if (Packed == 0)
        {
            span.Batch = b;
            span.Length = denseTokens;
            return span;
        }
        int start = Math.Min(Math.Max(CuSeqlens[b], 0), TotalTokens);
        int end = Math.Min(Math.Max(CuSeqlens[b + 1], start), TotalTokens);
        span.TokenStart = start;
        span.Length = Math.Min(end - start, MaxTokens);
        span.PaddedStart = (start + SageConstants.KBlockKeys - 1) / SageConstants.KBlockKeys * SageConstants.KBlockKeys
            + SageConstants.KBlockKeys * b;
        return span;
    }
}
