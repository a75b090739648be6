using SageAttn.Kernels.Attention;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Reference;

/// <summary>Host copies of the quantized tensors (layouts as in <see cref="AttentionParams"/>).</summary>
public sealed record QuantizedHostInputs(sbyte[] Q, float[] QScale, sbyte[] K, float[] KScale, uint[] V,
    float[] VScale, float[] VMean, float[]? LseCorrection);

/// <summary>
/// A plain, scalar C# model of the quantized algorithm the kernel runs — same quantized inputs, same
/// 64-key blocks, same online-softmax order and FP8 rounding of P, same per-block accumulation — written
/// from the algorithm rather than from the kernel's fragment layout. Agreement to ~1e-4 with the kernel
/// proves the fragment bookkeeping; a loose tolerance against float64 would hide it.
/// </summary>
public static class QuantizedAttentionModel
{
    public static (float[] Output, float[] Lse) Compute(QuantizedHostInputs x, int batch, int headsQ, int headsKv,
        int nq, int nk, int headDim, AttentionVariant variant, bool causal, int causalOffset, bool smoothV, TensorElementType outputType)
    {
        int dp = SageConstants.PaddedHeadDim(headDim);
        int nqPad = SageConstants.RoundUp(nq, SageConstants.QTileRows), nkPad = SageConstants.RoundUp(nk, SageConstants.KBlockKeys);
        int kBlocks = nkPad / SageConstants.KBlockKeys, qTiles = nqPad / SageConstants.QTileRows;
        bool fp16Pv = variant.HasFp16Values(), sumsRoundedP = variant.SumsRoundedP();
        float shift = fp16Pv ? 0f : SageConstants.Fp8Shift;
        var output = new float[batch * headsQ * nq * headDim];
        var lse = new float[batch * headsQ * nq];

        Parallel.For(0, batch * headsQ, bh =>
        {
            int b = bh / headsQ, h = bh % headsQ, kvh = h / (headsQ / headsKv);
            int kvIndex = b * headsKv + kvh;
            var values = DecodeV(x.V, kvIndex, dp, nkPad, fp16Pv); // [c][key]
            var acc = new float[dp];
            var logits = new float[SageConstants.KBlockKeys];
            for (int i = 0; i < nq; i++)
            {
                int tile = i / SageConstants.QTileRows, local = i % SageConstants.QTileRows;
                float qScale = x.QScale[bh * qTiles * SageConstants.QScaleSlotsPerTile + tile * SageConstants.QScaleSlotsPerTile
                    + local / SageConstants.WarpRows * 8 + local % 8];
                float rowMax = SageConstants.MaskedLogit, rowSum = 0;
                Array.Clear(acc);
                for (int kb = 0; kb < kBlocks; kb++)
                {
                    float blockMax = float.MinValue;
                    for (int jj = 0; jj < SageConstants.KBlockKeys; jj++)
                    {
                        int j = kb * SageConstants.KBlockKeys + jj;
                        float kScale = x.KScale[kvIndex * kBlocks * 4 + kb * 4 + ((jj & 7) >> 1)];
                        int dot = 0;
                        for (int c = 0; c < dp; c++)
                            dot += x.Q[((long)bh * nqPad + i) * dp + c] * x.K[((long)kvIndex * nkPad + j) * dp + c];
                        bool visible = j < nk && (!causal || j <= i + causalOffset);
                        logits[jj] = visible ? dot * (qScale * kScale) : SageConstants.MaskedLogit;
                        blockMax = Math.Max(blockMax, logits[jj]);
                    }
                    float newMax = Math.Max(rowMax, blockMax);
                    float rescale = float.Exp2(rowMax - newMax);
                    rowMax = newMax;
                    float blockSum = 0;
                    double roundedSum = 0;
                    for (int jj = 0; jj < logits.Length; jj++)
                    {
                        logits[jj] = float.Exp2(logits[jj] - (newMax - shift));
                        if (sumsRoundedP)
                            roundedSum += E4M3.Decode(E4M3.Encode(logits[jj]));
                        else
                            blockSum += logits[jj];
                    }
                    if (sumsRoundedP)
                        blockSum = (float)roundedSum;
                    rowSum = rowSum * rescale + blockSum;
                    for (int c = 0; c < dp; c++)
                        acc[c] = acc[c] * rescale + BlockProduct(logits, values, c, kb, variant);
                }
                float inverse = 1f / rowSum;
                for (int c = 0; c < headDim; c++)
                {
                    float value = acc[c] * inverse * x.VScale[kvIndex * dp + c];
                    if (smoothV) value += x.VMean[kvIndex * dp + c];
                    output[((long)bh * nq + i) * headDim + c] = HalfBits.ToFloat(HalfBits.FromFloat(value, outputType), outputType);
                }
                float l = (MathF.Log2(rowSum) + rowMax - shift) * SageConstants.Ln2;
                lse[(long)bh * nq + i] = l + (x.LseCorrection?[(long)bh * nq + i] ?? 0f);
            }
        });
        return (output, lse);
    }

    /// <summary>One 64-key block's contribution to channel c, rounded as the variant's tensor-core accumulation rounds it.</summary>
    private static float BlockProduct(float[] p, float[,] values, int c, int kb, AttentionVariant variant)
    {
        int first = kb * SageConstants.KBlockKeys;
        switch (variant)
        {
            case AttentionVariant.QkInt8PvFp8:
            case AttentionVariant.HopperQkInt8PvFp8:
            {
                double sum = 0;
                for (int jj = 0; jj < p.Length; jj++)
                    sum += (double)E4M3.Decode(E4M3.Encode(p[jj])) * values[c, first + jj];
                return (float)sum;
            }
            case AttentionVariant.QkInt8PvFp8Fp16Accum:
            {
                // Two k32 steps, each rounding the running fp16 accumulator.
                float half = 0;
                for (int step = 0; step < 2; step++)
                {
                    double sum = half;
                    for (int jj = step * 32; jj < step * 32 + 32; jj++)
                        sum += (double)E4M3.Decode(E4M3.Encode(p[jj])) * values[c, first + jj];
                    half = HalfBits.Fp16ToFloat(HalfBits.FloatToFp16((float)sum));
                }
                return half;
            }
            default:
            {
                double sum = 0;
                for (int jj = 0; jj < p.Length; jj++)
                    sum += (double)HalfBits.Fp16ToFloat(HalfBits.FloatToFp16(p[jj])) * values[c, first + jj];
                return (float)sum;
            }
        }
    }

    /// <summary>V as [channel, key] floats, undoing the FP8 token permutation.</summary>
    private static float[,] DecodeV(uint[] words, int kvIndex, int dp, int nkPad, bool fp16)
    {
        var values = new float[dp, nkPad];
        int perWord = fp16 ? 2 : 4, wordsPerRow = nkPad / perWord;
        for (int c = 0; c < dp; c++)
        for (int position = 0; position < nkPad; position++)
        {
            uint word = words[((long)kvIndex * dp + c) * wordsPerRow + position / perWord];
            if (fp16)
                values[c, position] = HalfBits.Fp16ToFloat((ushort)(word >> (16 * (position % 2))));
            else
            {
                int key = position / SageConstants.KBlockKeys * SageConstants.KBlockKeys + QuantizeVKernel.PermutedToken(position % SageConstants.KBlockKeys);
                values[c, key] = E4M3.Decode((byte)(word >> (8 * (position % 4))));
            }
        }
        return values;
    }
}
