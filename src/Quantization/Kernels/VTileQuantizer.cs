using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>
/// Per-channel quantization and transposition of one 64-token V block by a 128-thread block (the V step of
/// <see cref="QkvQuantizeKernel"/>), with the numbers and output layout of <see cref="QuantizeVKernel"/>.
/// </summary>
/// <remarks>
/// Threads load their token slices (<see cref="TileSlices"/>, 16-byte coalesced reads) and stage them as raw bits in
/// shared memory (<see cref="TileStaging"/>, one 16-byte store per slice); after a barrier each thread builds 16 bytes
/// of one channel row — 16 permuted tokens as four e4m3 words, or 8 tokens as four fp16x2 words — from (x − center) ·
/// inverse scale of its channel, and writes them with one 16-byte store (4 threads per 64-byte row segment).
/// </remarks>
public static class VTileQuantizer
{
    private const int Tile = SageConstants.KBlockKeys;

    /// <summary>Quantizes block <paramref name="block"/> of head (b, h). Every thread of the block must call it.</summary>
    /// <param name="centers">Shared: the Dp channel means (zeros without V smoothing).</param>
    /// <param name="inverses">Shared: the Dp inverse channel scales.</param>
    /// <param name="staged">Shared: the staging area (<see cref="TileStaging.Chunks"/>).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run(in StridedTensor input, ArrayView<uint> output, int b, int h, int block, int paddedTokens,
        int paddedHeadDim, int elementType, int format, bool vector, ArrayView<float> centers, ArrayView<float> inverses,
        in TileSlices.Mapping m, ArrayView<Half8> staged)
    {
        int tid = Group.IdxX;
        int firstRow = block * Tile;
        var s = default(TileSlices);
        s.Load(input, b, h, firstRow, m, vector);
        s.Stage(staged, m, paddedHeadDim);
        Group.Barrier();

        var bits = staged.Cast<ushort>();
        var output128 = output.Cast<Half8>();
        long channelBase = (long)(b * input.Heads + h) * paddedHeadDim;
        // Rows at or past this are padding: they quantize to 0, as the references leave padding unshifted.
        int realRows = input.Tokens - firstRow;
        if (format == (int)VFormat.Fp16)
        {
            // A channel row of the block is 32 words (2 tokens each): 8 groups of 4 words (8 tokens in order).
            int wordsPerRow = paddedTokens / 2;
            for (int q = tid; q < paddedHeadDim * 8; q += TileSlices.Threads)
            {
                int c = q / 8, t = (q & 7) * 8;
                var channel = new Channel(bits, c, paddedHeadDim, elementType, centers[c], inverses[c], realRows);
                var words = new Half8
                {
                    W0 = DeviceConvert.PackFp16x2(channel.Scaled(t), channel.Scaled(t + 1)),
                    W1 = DeviceConvert.PackFp16x2(channel.Scaled(t + 2), channel.Scaled(t + 3)),
                    W2 = DeviceConvert.PackFp16x2(channel.Scaled(t + 4), channel.Scaled(t + 5)),
                    W3 = DeviceConvert.PackFp16x2(channel.Scaled(t + 6), channel.Scaled(t + 7)),
                };
                output128[((channelBase + c) * wordsPerRow + block * 32 + (q & 7) * 4) / 4] = words;
            }
        }
        else
        {
            // A channel row of the block is 16 words (4 e4m3 each): 4 groups of 16 tokens, stored permuted.
            int wordsPerRow = paddedTokens / 4;
            for (int q = tid; q < paddedHeadDim * 4; q += TileSlices.Threads)
            {
                int c = q / 4, group = (q & 3) * 16;
                var channel = new Channel(bits, c, paddedHeadDim, elementType, centers[c], inverses[c], realRows);
                var words = new Half8
                {
                    W0 = channel.PackPermuted(group, 0),
                    W1 = channel.PackPermuted(group, 4),
                    W2 = channel.PackPermuted(group, 8),
                    W3 = channel.PackPermuted(group, 12),
                };
                output128[((channelBase + c) * wordsPerRow + block * 16 + (q & 3) * 4) / 4] = words;
            }
        }
        // The next block of the strip overwrites the staging area.
        Group.Barrier();
    }

    /// <summary>One channel of the staged block, read by token: (x − center) · inverse, 0 for padding rows.</summary>
    private readonly struct Channel
    {
        private readonly ArrayView<ushort> _bits;
        private readonly int _c, _paddedHeadDim, _elementType, _realRows;
        private readonly float _center, _inverse;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Channel(ArrayView<ushort> bits, int c, int paddedHeadDim, int elementType, float center, float inverse, int realRows)
        {
            _bits = bits;
            _c = c;
            _paddedHeadDim = paddedHeadDim;
            _elementType = elementType;
            _center = center;
            _inverse = inverse;
            _realRows = realRows;
        }

        /// <summary>The scaled value of token <paramref name="row"/> of the block.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Scaled(int row)
        {
            float x = TileStaging.Read(_bits, row, _c, _paddedHeadDim, _elementType);
            return (row < _realRows ? x - _center : 0f) * _inverse;
        }

        /// <summary>
        /// The e4m3 word at positions <paramref name="group"/> + <paramref name="offset"/> .. + 3 (tokens permuted as the
        /// P·V fragments need; <paramref name="group"/> is a multiple of 16, so the permutation acts on the offsets only).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public uint PackPermuted(int group, int offset) => DeviceConvert.PackE4M3x4(
            Scaled(group + QuantizeVKernel.PermutedToken(offset)),
            Scaled(group + QuantizeVKernel.PermutedToken(offset + 1)),
            Scaled(group + QuantizeVKernel.PermutedToken(offset + 2)),
            Scaled(group + QuantizeVKernel.PermutedToken(offset + 3)));
    }
}
