using ILGPU;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization.Formats;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// The P·V step of one 64-key block for the three variants: P comes from the score registers
/// (<c>scores[4j + i]</c> = accumulator element i of key tile j), V from the transposed shared tile.
/// </summary>
/// <remarks>
/// FP8 A operand for k32 step s (keys 32s..32s+31): R0 = row g, tiles 4s and 4s+1 elements 0, 1 (keys
/// 2t, 2t+1, 8+2t, 9+2t), R1 = the same for row g + 8, R2/R3 = tiles 4s+2, 4s+3. V was stored with the
/// matching key permutation, so B is plain: column 8n + g, positions 32s + 4t.. and 32s + 16 + 4t..
/// FP16 A operand for k16 step s: R0 = tile 2s elements 0, 1; R1 = tile 2s elements 2, 3;
/// R2, R3 = tile 2s + 1. No permutation is needed there.
/// </remarks>
public static class PvTile
{
    /// <summary>v2: each block's FP8 product goes into a fresh FP32 buffer that is then added to O, bounding the tensor core's reduced-precision accumulation error to one block.</summary>
    public static void AccumulateFp8Fp32(ArrayView<float> scores, ArrayView<uint> pFrag, ArrayView<uint> vTile, int vStride,
        ArrayView<float> output, int dp, int g, int t)
    {
        PackFp8(scores, pFrag);
        for (int n = 0; n < dp / 8; n++)
        {
            var block = default(Float4Frag);
            int vRow = (8 * n + g) * vStride;
            for (int s = 0; s < 2; s++)
            {
                AFrag a;
                a.R0 = pFrag[s * 4]; a.R1 = pFrag[s * 4 + 1]; a.R2 = pFrag[s * 4 + 2]; a.R3 = pFrag[s * 4 + 3];
                BFrag bf;
                bf.R0 = vTile[vRow + s * 8 + t];
                bf.R1 = vTile[vRow + s * 8 + 4 + t];
                TensorCore.MmaE4M3(ref block, a, bf);
            }
            output[n * 4] += block.C0;
            output[n * 4 + 1] += block.C1;
            output[n * 4 + 2] += block.C2;
            output[n * 4 + 3] += block.C3;
        }
    }

    /// <summary>v2++: the block's two k32 steps accumulate in FP16 (V scaled to 2.25 keeps it finite), then convert and add to the FP32 O.</summary>
    public static void AccumulateFp8Fp16(ArrayView<float> scores, ArrayView<uint> pFrag, ArrayView<uint> vTile, int vStride,
        ArrayView<float> output, int dp, int g, int t)
    {
        PackFp8(scores, pFrag);
        for (int n = 0; n < dp / 8; n++)
        {
            var block = default(Half4Frag);
            int vRow = (8 * n + g) * vStride;
            for (int s = 0; s < 2; s++)
            {
                AFrag a;
                a.R0 = pFrag[s * 4]; a.R1 = pFrag[s * 4 + 1]; a.R2 = pFrag[s * 4 + 2]; a.R3 = pFrag[s * 4 + 3];
                BFrag bf;
                bf.R0 = vTile[vRow + s * 8 + t];
                bf.R1 = vTile[vRow + s * 8 + 4 + t];
                TensorCore.MmaE4M3F16(ref block, a, bf);
            }
            output[n * 4] += DeviceConvert.Fp16ToFloat((ushort)block.Lo);
            output[n * 4 + 1] += DeviceConvert.Fp16ToFloat((ushort)(block.Lo >> 16));
            output[n * 4 + 2] += DeviceConvert.Fp16ToFloat((ushort)block.Hi);
            output[n * 4 + 3] += DeviceConvert.Fp16ToFloat((ushort)(block.Hi >> 16));
        }
    }

    /// <summary>FP16 P·V accumulating straight into the FP32 O (m16n8k16, four k steps per block).</summary>
    public static void AccumulateFp16(ArrayView<float> scores, ArrayView<uint> pFrag, ArrayView<uint> vTile, int vStride,
        ArrayView<float> output, int dp, int g, int t)
    {
        for (int s = 0; s < 4; s++)
        {
            pFrag[s * 4] = DeviceConvert.PackFp16x2(scores[8 * s], scores[8 * s + 1]);
            pFrag[s * 4 + 1] = DeviceConvert.PackFp16x2(scores[8 * s + 2], scores[8 * s + 3]);
            pFrag[s * 4 + 2] = DeviceConvert.PackFp16x2(scores[8 * s + 4], scores[8 * s + 5]);
            pFrag[s * 4 + 3] = DeviceConvert.PackFp16x2(scores[8 * s + 6], scores[8 * s + 7]);
        }
        for (int n = 0; n < dp / 8; n++)
        {
            Float4Frag acc;
            acc.C0 = output[n * 4]; acc.C1 = output[n * 4 + 1]; acc.C2 = output[n * 4 + 2]; acc.C3 = output[n * 4 + 3];
            int vRow = (8 * n + g) * vStride;
            for (int s = 0; s < 4; s++)
            {
                AFrag a;
                a.R0 = pFrag[s * 4]; a.R1 = pFrag[s * 4 + 1]; a.R2 = pFrag[s * 4 + 2]; a.R3 = pFrag[s * 4 + 3];
                BFrag bf;
                bf.R0 = vTile[vRow + s * 8 + t];
                bf.R1 = vTile[vRow + s * 8 + 4 + t];
                TensorCore.MmaF16(ref acc, a, bf);
            }
            output[n * 4] = acc.C0; output[n * 4 + 1] = acc.C1; output[n * 4 + 2] = acc.C2; output[n * 4 + 3] = acc.C3;
        }
    }

    /// <summary>P to e4m3 A registers for the block's two k32 steps (see the class remarks).</summary>
    private static void PackFp8(ArrayView<float> scores, ArrayView<uint> pFrag)
    {
        for (int s = 0; s < 2; s++)
        {
            int j = 4 * s;
            pFrag[s * 4] = DeviceConvert.PackE4M3x4(scores[4 * j], scores[4 * j + 1], scores[4 * (j + 1)], scores[4 * (j + 1) + 1]);
            pFrag[s * 4 + 1] = DeviceConvert.PackE4M3x4(scores[4 * j + 2], scores[4 * j + 3], scores[4 * (j + 1) + 2], scores[4 * (j + 1) + 3]);
            pFrag[s * 4 + 2] = DeviceConvert.PackE4M3x4(scores[4 * (j + 2)], scores[4 * (j + 2) + 1], scores[4 * (j + 3)], scores[4 * (j + 3) + 1]);
            pFrag[s * 4 + 3] = DeviceConvert.PackE4M3x4(scores[4 * (j + 2) + 2], scores[4 * (j + 2) + 3], scores[4 * (j + 3) + 2], scores[4 * (j + 3) + 3]);
        }
    }
}
