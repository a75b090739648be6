using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>Parameters of <see cref="QuantizeVKernel"/>.</summary>
public struct QuantizeVParams
{
    /// <summary>V in fp16/bf16 (packed: one [1, H, T, D] tensor).</summary>
    public StridedTensor Input;
    /// <summary>Dense mode, or the packed sequences of <see cref="Input"/>.</summary>
    public PackedSequences Sequences;
    /// <summary>
    /// Transposed V as 32-bit words, [B, H, Dp, paddedTokens] elements (packed: [1, H, Dp, paddedTokens]): e4m3 bytes with tokens permuted
    /// inside each group of 16 (FP8 formats), or fp16 in token order (<see cref="VFormat.Fp16"/>).
    /// </summary>
    public ArrayView<uint> Output;
    /// <summary>Per-channel dequantization factor [B, H, Dp] (per sequence when packed): O[:, c] is multiplied by it.</summary>
    public ArrayView<float> Scales;
    /// <summary>Per-channel mean [B, H, Dp] added back to O when smoothing (zeros otherwise).</summary>
    public ArrayView<float> Means;
    public ArrayView<float> Stats;
    public int StatsChunks;
    public int Smooth;
    public int ElementType;
    public int PaddedHeadDim;
    /// <summary>Tokens per channel row of the output: N padded to 64, or <see cref="PackedSequences.PaddedRows"/> when packed.</summary>
    public int PaddedTokens;
    /// <summary>A <see cref="VFormat"/> value.</summary>
    public int Format;
}

/// <summary>
/// Quantizes V per channel and writes it transposed, one thread block per 64 tokens: the block stages
/// the scaled tile [64 tokens][Dp] in shared memory, then writes channel rows so both the reads and the
/// writes are coalesced.
/// </summary>
/// <remarks>
/// The token permutation [0,1,8,9, 2,3,10,11, 4,5,12,13, 6,7,14,15] inside each 16 makes the FP8 P·V
/// A operand come straight from the Q·Kᵀ accumulator registers: lane t holds keys 2t, 2t+1, 8+2t, 9+2t of
/// each 16, which the m16n8k32 A fragment wants at k = 4t..4t+3.
/// Grid (blocks, H, B): packed inputs take b as the sequence; its block 0 writes the scales (even for an empty
/// sequence, so the attention epilogue never reads unwritten scales) and blocks past its end exit.
/// </remarks>
public static class QuantizeVKernel
{
    private const int Tile = SageConstants.KBlockKeys;
    private const int MaxHeadDim = 128;

    public static void Run(QuantizeVParams p)
    {
        var staged = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        var inverse = SharedMemory.Allocate<float>(MaxHeadDim);
        var mean = SharedMemory.Allocate<float>(MaxHeadDim);

        int tid = Group.IdxX, threads = Group.DimX;
        int block = Grid.IdxX, h = Grid.IdxY, b = Grid.IdxZ;
        int dp = p.PaddedHeadDim;
        long channelBase = (long)(b * p.Input.Heads + h) * dp;
        var sequence = p.Sequences.Resolve(b, p.Input.Tokens);
        if (block > 0 && block * Tile >= sequence.Length)
            return;
        long outputChannelBase = (long)(sequence.Batch * p.Input.Heads + h) * dp;

        if (tid < dp)
        {
            int c = tid;
            float center = p.Smooth != 0 && c < p.Input.HeadDim
                ? ChannelStatsKernel.Mean(p.Stats, b, h, p.Input.Heads, p.StatsChunks, c, dp, sequence.Length)
                : 0f;
            float amax = c < p.Input.HeadDim
                ? ChannelStatsKernel.AbsMaxAround(p.Stats, b, h, p.Input.Heads, p.StatsChunks, c, dp, sequence.Length, center)
                : 0f;
            float scale = ChannelScale(amax, p.Format);
            inverse[c] = 1f / scale;
            mean[c] = center;
            if (block == 0)
            {
                p.Scales[channelBase + c] = scale;
                p.Means[channelBase + c] = center;
            }
        }
        Group.Barrier();
        if (block * Tile >= sequence.Length)
            return;

        // Dp is 64 or 128 (SageConstants.PaddedHeadDim): shift and mask, since a division by a run-time value costs a
        // general integer division per element (docs/runtime.md).
        int dpShift = dp == 128 ? 7 : 6;
        for (int i = tid; i < Tile * dp; i += threads)
        {
            int token = i >> dpShift, c = i & (dp - 1);
            int n = block * Tile + token;
            float v = 0;
            if (n < sequence.Length && c < p.Input.HeadDim)
                v = (DeviceConvert.ToFloat(p.Input.Data[p.Input.RowOffset(sequence.Batch, h, sequence.TokenStart + n) + c], p.ElementType) - mean[c]) * inverse[c];
            staged[token * MaxHeadDim + c] = v;
        }
        Group.Barrier();

        if (p.Format == (int)VFormat.Fp16)
        {
            // 2 tokens per word, 32 words per channel row of this block.
            int wordsPerRow = p.PaddedTokens / 2, firstWord = sequence.PaddedStart / 2;
            for (int w = tid; w < dp * 32; w += threads)
            {
                int c = w / 32, first = (w & 31) * 2;
                p.Output[(outputChannelBase + c) * wordsPerRow + firstWord + block * 32 + (w & 31)] =
                    DeviceConvert.PackFp16x2(staged[first * MaxHeadDim + c], staged[(first + 1) * MaxHeadDim + c]);
            }
        }
        else
        {
            // 4 tokens per word, 16 words per channel row of this block; word position p holds token Permuted(p).
            int wordsPerRow = p.PaddedTokens / 4, firstWord = sequence.PaddedStart / 4;
            for (int w = tid; w < dp * 16; w += threads)
            {
                int c = w / 16, first = (w & 15) * 4;
                p.Output[(outputChannelBase + c) * wordsPerRow + firstWord + block * 16 + (w & 15)] = DeviceConvert.PackE4M3x4(
                    staged[PermutedToken(first) * MaxHeadDim + c],
                    staged[PermutedToken(first + 1) * MaxHeadDim + c],
                    staged[PermutedToken(first + 2) * MaxHeadDim + c],
                    staged[PermutedToken(first + 3) * MaxHeadDim + c]);
            }
        }
    }

    /// <summary>The token stored at position <paramref name="position"/> of a 64-token block.</summary>
    public static int PermutedToken(int position)
    {
        int inGroup = position & 15, quad = inGroup >> 2, i = inGroup & 3;
        return (position & ~15) + 2 * quad + (i & 1) + 8 * (i >> 1);
    }

    /// <summary>The per-channel dequantization factor for a channel whose largest magnitude is <paramref name="absMax"/>.</summary>
    public static float ChannelScale(float absMax, int format)
    {
        if (format == (int)VFormat.Fp16)
        {
            // Power-of-two scale: exact, and only for values that would overflow fp16 (bf16 inputs).
            float scale = 1f;
            while (absMax / scale > SageConstants.VMaxFp16Value)
                scale *= 2f;
            return scale;
        }
        float target = format == (int)VFormat.Fp8ForFp16Accum ? SageConstants.VMaxFp16Accum : SageConstants.VMaxFp32Accum;
        return Math.Max(absMax, SageConstants.ScaleEpsilon) / target;
    }
}
