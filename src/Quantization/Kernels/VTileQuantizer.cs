using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// Per-channel quantization and transposition of one 64-token V block by a 128-thread block (the V step of
/// <see cref="QkvQuantizeKernel"/>), with the numbers and output layout of <see cref="QuantizeVKernel"/>.
/// </summary>
/// <remarks>
/// Threads load their token slices (<see cref="TileSlices"/>, 16-byte coalesced reads), scale them and stage floats
/// [token][channel] in shared memory with a row stride of Dp + 1 (an odd stride spreads a channel's tokens over the
/// banks); after a barrier each thread builds 16 bytes of one channel row — 16 permuted tokens as four e4m3 words,
/// or 8 tokens as four fp16x2 words — and writes them with one 16-byte store (4 threads per 64-byte row segment).
/// </remarks>
public static class VTileQuantizer
{
    private const int Tile = SageConstants.KBlockKeys;

    /// <summary>Floats of the shared staging area for a padded head dim of at most 128.</summary>
    public const int StagedFloats = Tile * (128 + 1);

    /// <summary>Quantizes block <paramref name="block"/> of head (b, h). Every thread of the block must call it.</summary>
    /// <param name="mean">The thread's 8 channel means (zeros without V smoothing).</param>
    /// <param name="inverse">The thread's 8 inverse channel scales.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run(in StridedTensor input, ArrayView<uint> output, int b, int h, int block, int paddedTokens,
        int paddedHeadDim, int elementType, int format, bool vector, in Float8 mean, in Float8 inverse,
        in TileSlices.Mapping m, ArrayView<float> staged)
    {
        int tid = Group.IdxX, stride = paddedHeadDim + 1;
        int firstRow = block * Tile;
        var s = default(TileSlices);
        s.Load(input, b, h, firstRow, m, vector);
        Stage(s.S0, input, firstRow, 0, elementType, mean, inverse, m, stride, staged);
        Stage(s.S1, input, firstRow, 1, elementType, mean, inverse, m, stride, staged);
        Stage(s.S2, input, firstRow, 2, elementType, mean, inverse, m, stride, staged);
        Stage(s.S3, input, firstRow, 3, elementType, mean, inverse, m, stride, staged);
        if (m.Passes > 4)
        {
            Stage(s.S4, input, firstRow, 4, elementType, mean, inverse, m, stride, staged);
            Stage(s.S5, input, firstRow, 5, elementType, mean, inverse, m, stride, staged);
            Stage(s.S6, input, firstRow, 6, elementType, mean, inverse, m, stride, staged);
            Stage(s.S7, input, firstRow, 7, elementType, mean, inverse, m, stride, staged);
        }
        Group.Barrier();

        var output128 = output.Cast<Half8>();
        long channelBase = (long)(b * input.Heads + h) * paddedHeadDim;
        if (format == (int)VFormat.Fp16)
        {
            // A channel row of the block is 32 words (2 tokens each): 8 groups of 4 words (8 tokens in order).
            int wordsPerRow = paddedTokens / 2;
            for (int q = tid; q < paddedHeadDim * 8; q += TileSlices.Threads)
            {
                int c = q / 8, t = q % 8 * 8;
                var words = new Half8
                {
                    W0 = DeviceConvert.PackFp16x2(staged[t * stride + c], staged[(t + 1) * stride + c]),
                    W1 = DeviceConvert.PackFp16x2(staged[(t + 2) * stride + c], staged[(t + 3) * stride + c]),
                    W2 = DeviceConvert.PackFp16x2(staged[(t + 4) * stride + c], staged[(t + 5) * stride + c]),
                    W3 = DeviceConvert.PackFp16x2(staged[(t + 6) * stride + c], staged[(t + 7) * stride + c]),
                };
                output128[((channelBase + c) * wordsPerRow + block * 32 + q % 8 * 4) / 4] = words;
            }
        }
        else
        {
            // A channel row of the block is 16 words (4 e4m3 each): 4 groups of 16 tokens, stored permuted.
            int wordsPerRow = paddedTokens / 4;
            for (int q = tid; q < paddedHeadDim * 4; q += TileSlices.Threads)
            {
                int c = q / 4, position = q % 4 * 16;
                var words = new Half8
                {
                    W0 = PackPermuted(staged, position, c, stride),
                    W1 = PackPermuted(staged, position + 4, c, stride),
                    W2 = PackPermuted(staged, position + 8, c, stride),
                    W3 = PackPermuted(staged, position + 12, c, stride),
                };
                output128[((channelBase + c) * wordsPerRow + block * 16 + q % 4 * 4) / 4] = words;
            }
        }
        // The next block of the strip overwrites the staging area.
        Group.Barrier();
    }

    /// <summary>Scales one slice and stages it at its token row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Stage(in Half8 raw, in StridedTensor input, int firstRow, int pass, int elementType, in Float8 mean,
        in Float8 inverse, in TileSlices.Mapping m, int stride, ArrayView<float> staged)
    {
        int row = m.Row(pass);
        var x = raw.Decode(elementType).Centered(mean, firstRow + row < input.Tokens);
        int i = row * stride + m.C0;
        staged[i] = x.F0 * inverse.F0;
        staged[i + 1] = x.F1 * inverse.F1;
        staged[i + 2] = x.F2 * inverse.F2;
        staged[i + 3] = x.F3 * inverse.F3;
        staged[i + 4] = x.F4 * inverse.F4;
        staged[i + 5] = x.F5 * inverse.F5;
        staged[i + 6] = x.F6 * inverse.F6;
        staged[i + 7] = x.F7 * inverse.F7;
    }

    /// <summary>The e4m3 word at positions <paramref name="position"/> .. + 3 (tokens permuted as the P·V fragments need).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint PackPermuted(ArrayView<float> staged, int position, int c, int stride) => DeviceConvert.PackE4M3x4(
        staged[QuantizeVKernel.PermutedToken(position) * stride + c],
        staged[QuantizeVKernel.PermutedToken(position + 1) * stride + c],
        staged[QuantizeVKernel.PermutedToken(position + 2) * stride + c],
        staged[QuantizeVKernel.PermutedToken(position + 3) * stride + c]);
}
