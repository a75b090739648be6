using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// The online-softmax state of one lane of the wgmma kernel for its two rows (g and g + 8 of its warp): running
/// maxima m and sums l, and the factor exp2(m_old − m_new) of the last step, which the caller applies to O when that
/// block's P·V retires.
/// </summary>
/// <remarks>
/// Logits arrive as INT32 Q·Kᵀ. The dequantization scale (q scale × k scale, positive, one per lane: the lane's columns
/// share a K scale slot, its two rows a Q slot) is folded into the exponent: the lane's max(x)·scale is the maximum of
/// its scaled logits (reduced over the quad after scaling, since the quad's lanes have different K scales), and
/// P = exp2(x · scale − (m − shift)) is one multiply-add and one ex2 per element. Only a block that crosses Nk or the causal diagonal is scaled first, so that masked logits are set in
/// the scaled domain as in the other kernels.
/// <para>The sums come one of two ways. FP16 P: the lane adds its own 16 columns per row in <see cref="Step"/> and the
/// quad is reduced once at the end. FP8 P: the tensor cores add the block's packed P (a wgmma of P against a tile of
/// e4m3 ones, <see cref="WarpGroupMma.IssueE4M3RowSums"/>) and the caller passes those whole-row sums to
/// <see cref="AddBlockSums"/>: 30 adds per block fewer in the loop, and O is divided by the sum of the very P values
/// (rounded to e4m3) that weighted V.</para>
/// </remarks>
public struct HopperRowSoftmax
{
    /// <summary>Running maxima of rows g and g + 8, in exp2 units.</summary>
    public float MaxLo, MaxHi;

    /// <summary>Row sums of P: the lane's partial ones (FP16 P) or the whole rows' (FP8 P, <see cref="AddBlockSums"/>).</summary>
    public float SumLo, SumHi;

    /// <summary>exp2(previous max − current max) of the last <see cref="Step"/>, for the O update of that block.</summary>
    public float RescaleLo, RescaleHi;

    private readonly float _shift;

    /// <summary>A lane's state before the first block.</summary>
    /// <param name="shift">log2 of the factor P carries (<see cref="SageConstants.Fp8Shift"/> for FP8 P, which uses e4m3's
    /// range; 0 for FP16 P).</param>
    public HopperRowSoftmax(float shift)
    {
        MaxLo = MaxHi = SageConstants.MaskedLogit;
        SumLo = SumHi = 0f;
        RescaleLo = RescaleHi = 1f;
        _shift = shift;
    }

    /// <summary>
    /// One key block: S from <paramref name="logits"/> × <paramref name="scale"/>, masked where the block crosses Nk or
    /// the diagonal, new maxima and rescale factor, P = exp2(S − m + shift) into <paramref name="scores"/> (not yet packed).
    /// </summary>
    /// <param name="logits">The block's INT32 Q·Kᵀ (retired).</param>
    /// <param name="scale">q scale × k scale (includes sm_scale · log2 e).</param>
    /// <param name="firstKey">The block's first key.</param>
    /// <param name="p">Sizes and the causal offset.</param>
    /// <param name="causal">Whether keys past row + offset are masked.</param>
    /// <param name="warpFirstRow">The warp's first query row (warp-uniform), for the rows of a masked block.</param>
    /// <param name="masked">Whether the block crosses Nk or the warp's causal diagonal (<see cref="Tile.FirstMaskedBlock"/>).</param>
    /// <param name="scores">Receives P as floats.</param>
    /// <param name="partialSums">Whether the lane adds its P into its partial sums here (FP16 P); false when the caller
    /// adds whole-row sums from the tensor cores (<see cref="AddBlockSums"/>).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Step(in WarpGroupIntAccumulator logits, float scale, int firstKey, in AttentionParams p, bool causal, int warpFirstRow,
        bool masked, ref ScoreTile scores, bool partialSums)
    {
        HopperTile.Convert(logits, ref scores);
        if (masked)
        {
            HopperTile.Scale(ref scores, scale);
            // The lane's rows and columns are derived here, on the rare masked block, rather than kept live across the
            // key loop: under the 128-register cap ptxas recomputed them from the lane index every block.
            int lane = Warp.LaneIdx, rowLo = warpFirstRow + (lane >> 2);
            Tile.Mask(ref scores, firstKey + 2 * (lane & 3), rowLo, rowLo + 8, p.Nk, causal, p.CausalOffset);
            scale = 1f;
        }

        Tile.RowMax(scores, out float blockMaxLo, out float blockMaxHi);
        float newMaxLo = Math.Max(MaxLo, AttentionKernel.QuadMax(blockMaxLo * scale));
        float newMaxHi = Math.Max(MaxHi, AttentionKernel.QuadMax(blockMaxHi * scale));
        RescaleLo = FastMath.Exp2(MaxLo - newMaxLo);
        RescaleHi = FastMath.Exp2(MaxHi - newMaxHi);
        MaxLo = newMaxLo;
        MaxHi = newMaxHi;
        HopperTile.Exp2(ref scores, scale, newMaxLo - _shift, newMaxHi - _shift);
        if (partialSums)
        {
            HopperTile.RowSums(scores, out float blockSumLo, out float blockSumHi);
            AddBlockSums(blockSumLo, blockSumHi);
        }
    }

    /// <summary>l = l · rescale + the block's sums (of the last <see cref="Step"/>'s P).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddBlockSums(float blockSumLo, float blockSumHi)
    {
        SumLo = SumLo * RescaleLo + blockSumLo;
        SumHi = SumHi * RescaleHi + blockSumHi;
    }

    /// <summary>The rows' whole sums: partial ones reduced over the quad, whole-row ones as they are.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void RowSums(bool partialSums, out float sumLo, out float sumHi)
    {
        sumLo = SumLo;
        sumHi = SumHi;
        if (!partialSums)
            return;
        sumLo += Warp.ShuffleXor(sumLo, 1);
        sumLo += Warp.ShuffleXor(sumLo, 2);
        sumHi += Warp.ShuffleXor(sumHi, 1);
        sumHi += Warp.ShuffleXor(sumHi, 2);
    }
}
