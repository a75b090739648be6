using SageAttn.Kernels.Attention;
using SageAttn.Quantization;
using SageAttn.Quantization.Formats;
using SageAttn.Tests.Support;

namespace SageAttn.Tests.Attention;

/// <summary>
/// The Hopper wgmma kernel (<see cref="HopperAttentionKernel"/>) on ILGPU's CPU accelerator, whose exact
/// emulation of wgmma and cp.async runs the real kernel code: against float64 attention and against the
/// quantized model of v2 (FP8 P·V, FP32 + FP32) or of the FP16-P·V variant, whose numerics the kernel shares.
/// </summary>
/// <remarks>
/// Model tolerance 1e-4 relative L1 (as for the mma.sync kernel): the emulation sums each k32 step of the FP8
/// product exactly and rounds it to FP32 once, so it differs from the model's single rounding of the 64-key
/// sum only in the last FP32 bits; the INT8 product is exact in both. A layout bug (a wrong descriptor,
/// copy mapping or P fragment) moves whole rows or columns and gives errors of order 1.
/// </remarks>
public sealed class CpuHopperAttentionKernelTests(CpuAcceleratorFixture fixture, ITestOutputHelper log)
    : AttentionKernelTests(fixture, log), IClassFixture<CpuAcceleratorFixture>
{
    private const AttentionVariant Hopper = AttentionVariant.HopperQkInt8PvFp8;
    private const AttentionVariant HopperFp16 = AttentionVariant.HopperQkInt8PvFp16;

    public static TheoryData<Case> HopperCases => new()
    {
        new Case("hopper d64 n1", 1, 2, 1, 1, 1, 64, Hopper),
        // Several warpgroups per block sharing K/V tiles; 4 query tiles over blocks of 3 leave a block with 2 idle warpgroups
        // (the producer loads only the active Q tiles; idle warpgroups still release every stage).
        new Case("hopper d64 n200 causal wg3", 1, 2, 1, 200, 200, 64, Hopper, Causal: true, HopperWarpGroups: 3),
        new Case("hopper d128 n200 wg3 ragged block", 1, 1, 1, 200, 330, 128, Hopper, HopperWarpGroups: 3),
        new Case("hopper d128 n200 q<k causal wg2 lse", 1, 2, 2, 150, 260, 128, Hopper, Causal: true, Lse: true, HopperWarpGroups: 2),
        new Case("hopper d64 n130 wg1", 1, 2, 1, 130, 130, 64, Hopper, HopperWarpGroups: 1),
        // Four warpgroups: at hd128 P·V's channel halves retire one after another (the 128-register budget); 5 tiles over
        // blocks of 4 leave a block with 3 idle warpgroups.
        new Case("hopper d128 n300 causal wg4 serial halves", 1, 1, 1, 300, 300, 128, Hopper, Causal: true, HopperWarpGroups: 4),
        new Case("hopper d64 n260 k330 wg4 lse", 1, 2, 1, 260, 330, 64, Hopper, Lse: true, HopperWarpGroups: 4),
        // More key blocks than stages (the ring wraps: stages are refilled and barrier phases alternate), causal skips, three
        // warpgroups; fewer blocks than the producer's lead.
        new Case("hopper d128 n700 causal wg3 ring wraps", 1, 1, 1, 700, 700, 128, Hopper, Causal: true, HopperWarpGroups: 3),
        new Case("hopper d64 n100 k1100 ring wraps twice", 1, 2, 1, 100, 1100, 64, Hopper),
        new Case("hopper d64 n100 k260 fewer blocks than lead", 1, 2, 1, 100, 260, 64, Hopper),
        // Two warpgroups: two blocks share an SM on the GPU, each with a ring of 4 stages 2 blocks ahead, which wraps here.
        new Case("hopper d64 n200 k700 wg2 ring of 4 wraps", 1, 2, 1, 200, 700, 64, Hopper, HopperWarpGroups: 2),
        new Case("hopper d128 n130 lse K-bias", 1, 2, 1, 130, 130, 128, Hopper, Lse: true, KOffset: 8f),
        new Case("hopper d64 n200 causal gqa2", 1, 4, 2, 200, 200, 64, Hopper, Causal: true),
        new Case("hopper d128 n200 bf16 nhd smoothV", 1, 1, 1, 200, 200, 128, Hopper, Nhd: true, Type: TensorElementType.BFloat16, SmoothV: true),
        new Case("hopper d128 causal bottom-right q<k lse", 2, 2, 1, 70, 200, 128, Hopper, Causal: true, Lse: true),
        new Case("hopper d80 padded perwarp", 1, 1, 1, 100, 64, 80, Hopper, Granularity: QuantGranularity.PerWarp),
        // FP16 P·V (the accurate mode): Vᵀ rows of 128 bytes (128-byte swizzle), four k16 products per 64 channels accumulating
        // into O in place; both channel halves at hd128, the ring wrapping, ragged blocks, causal, LSE (unshifted P), bf16.
        // Three warpgroups take the pipelined loop (P·V of block j in flight during the softmax of j + 1, O and P resident).
        new Case("hopper fp16 d128 n200 k330 wg2 ring wraps", 1, 2, 1, 200, 330, 128, HopperFp16, HopperWarpGroups: 2),
        new Case("hopper fp16 d64 n130 causal lse", 1, 2, 1, 130, 130, 64, HopperFp16, Causal: true, Lse: true),
        new Case("hopper fp16 d128 n300 causal wg3 lse K-bias", 1, 1, 1, 300, 300, 128, HopperFp16, Causal: true, Lse: true,
            KOffset: 8f, HopperWarpGroups: 3),
        new Case("hopper fp16 d128 bf16 nhd smoothV gqa2", 1, 4, 2, 100, 200, 128, HopperFp16, Nhd: true, Type: TensorElementType.BFloat16,
            SmoothV: true),
        new Case("hopper fp16 d80 padded wg3", 1, 1, 1, 200, 150, 80, HopperFp16, HopperWarpGroups: 3),
        new Case("hopper fp16 d128 n260 causal wg4 lse", 1, 1, 1, 260, 260, 128, HopperFp16, Causal: true, Lse: true, HopperWarpGroups: 4),
        new Case("hopper fp16 d128 n130 k700 wg3 pipelined ring of 8 wraps", 1, 1, 1, 130, 700, 128, HopperFp16, HopperWarpGroups: 3),
        // The warp-specialized form (a producer warpgroup, two pipelined consumers): the ring of 8 wrapping, a ragged block
        // whose spare consumer only releases stages, causal consumers visiting one block apart, bottom-right q < k, LSE, GQA,
        // the padded head dim and per-warp scales.
        new Case("hopper ws d128 n130 k700 ragged ring wraps", 1, 1, 1, 130, 700, 128, Hopper, WarpSpecialized: true),
        new Case("hopper ws d64 n300 causal lse gqa2", 1, 2, 1, 300, 300, 64, Hopper, Causal: true, Lse: true, WarpSpecialized: true),
        new Case("hopper ws d128 causal bottom-right q<k", 1, 1, 1, 70, 600, 128, Hopper, Causal: true, WarpSpecialized: true),
        new Case("hopper ws d80 padded perwarp K-bias", 1, 1, 1, 100, 150, 80, Hopper, Granularity: QuantGranularity.PerWarp, KOffset: 8f,
            WarpSpecialized: true),
    };

    [Theory]
    [MemberData(nameof(HopperCases))]
    public void MatchesModelAndReference(Case c) => AssertAccuracy(c, RunCase(c, seed: c.Name.Length * 101 + c.Nq));
}
