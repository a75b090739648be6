using ILGPU;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;

namespace SageAttn.Kernels.Attention;

/// <summary>Element type of an attention state tensor (partial or merged output).</summary>
public enum AttentionStateType
{
    /// <summary>IEEE binary16 bits.</summary>
    Float16 = TensorElementType.Float16,
    /// <summary>bfloat16 bits.</summary>
    BFloat16 = TensorElementType.BFloat16,
    /// <summary>binary32 (the decode kernel's partials).</summary>
    Float32 = 2,
}

/// <summary>
/// Everything <see cref="AttentionStateMergeKernel"/> reads and writes. A state is one query row's normalized
/// output O [D] and its natural-log LSE; rows are indexed (b, h, n) and addressed through strides, so both
/// attention layouts (HND, NHD) and the decode kernel's [splits, B, Hq, D] partials are read in place.
/// </summary>
public struct AttentionStateMergeParams
{
    /// <summary>Partial outputs when <see cref="PartialType"/> is Float32.</summary>
    public ArrayView<float> PartialF32;
    /// <summary>Partial outputs (fp16/bf16 bits) otherwise.</summary>
    public ArrayView<ushort> Partial16;
    /// <summary>Partial LSEs [Splits, B, H, N] natural log, contiguous; −∞ marks an empty partial.</summary>
    public ArrayView<float> PartialLse;
    /// <summary>Merged output when <see cref="OutputType"/> is Float32.</summary>
    public ArrayView<float> OutF32;
    /// <summary>Merged output (fp16/bf16 bits) otherwise.</summary>
    public ArrayView<ushort> Out16;
    /// <summary>Merged LSE [B, H, N] natural log, written when <see cref="WriteLse"/> is 1.</summary>
    public ArrayView<float> Lse;
    public long PartialStrideSplit, PartialStrideBatch, PartialStrideHead, PartialStrideToken;
    public long OutStrideBatch, OutStrideHead, OutStrideToken;
    public int Splits, Batch, Heads, Tokens, HeadDim;
    /// <summary>An <see cref="AttentionStateType"/> value.</summary>
    public int PartialType;
    /// <summary>An <see cref="AttentionStateType"/> value.</summary>
    public int OutputType;
    public int WriteLse;
}

/// <summary>
/// Merges S partial attention states of the same query rows over disjoint key sets into the state over their
/// union — the exact online-softmax combination:
/// M = maxₛ LSEₛ, wₛ = exp(LSEₛ − M), O = Σ wₛ Oₛ / Σ wₛ, LSE = M + ln Σ wₛ.
/// </summary>
/// <remarks>
/// Robust to empty partials: an LSE of −∞ gets weight 0 and its O is never read (it may be garbage); when every
/// partial is empty the row's O is 0 and its LSE −∞. One thread per (row, channel), 128 per block; each thread
/// recomputes its row's weights from the S LSEs (a few cached loads), which keeps the kernel one pass.
/// </remarks>
public static class AttentionStateMergeKernel
{
    /// <summary>Threads per block.</summary>
    public const int Threads = 128;

    /// <summary>Kernel entry: grid x = ⌈rows · D / 128⌉.</summary>
    public static void Run(AttentionStateMergeParams p)
    {
        long rows = (long)p.Batch * p.Heads * p.Tokens;
        long element = (long)Grid.IdxX * Threads + Group.IdxX;
        if (element >= rows * p.HeadDim)
            return;
        long row = element / p.HeadDim;
        int channel = (int)(element % p.HeadDim);
        int n = (int)(row % p.Tokens);
        long bh = row / p.Tokens;
        int h = (int)(bh % p.Heads), b = (int)(bh / p.Heads);

        float max = float.NegativeInfinity;
        for (int s = 0; s < p.Splits; s++)
            max = Math.Max(max, p.PartialLse[s * rows + row]);
        float sum = 0, value = 0;
        if (max > float.NegativeInfinity)
        {
            long partialRow = b * p.PartialStrideBatch + h * p.PartialStrideHead + n * p.PartialStrideToken + channel;
            for (int s = 0; s < p.Splits; s++)
            {
                float weight = FastMath.Exp2((p.PartialLse[s * rows + row] - max) * SageConstants.Log2E);
                if (weight > 0)
                {
                    sum += weight;
                    value += weight * ReadPartial(p, s * p.PartialStrideSplit + partialRow);
                }
            }
        }

        bool empty = !(sum > 0);
        float result = empty ? 0f : value / sum;
        long outIndex = b * p.OutStrideBatch + h * p.OutStrideHead + n * p.OutStrideToken + channel;
        if (p.OutputType == (int)AttentionStateType.Float32)
            p.OutF32[outIndex] = result;
        else
            p.Out16[outIndex] = DeviceConvert.FromFloat(result, p.OutputType);
        if (p.WriteLse != 0 && channel == 0)
            p.Lse[row] = empty ? float.NegativeInfinity : max + FastMath.Log2(sum) * SageConstants.Ln2;
    }

    private static float ReadPartial(in AttentionStateMergeParams p, long index) =>
        p.PartialType == (int)AttentionStateType.Float32
            ? p.PartialF32[index]
            : DeviceConvert.ToFloat(p.Partial16[index], p.PartialType);
}
