using System.Runtime.CompilerServices;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// Moves registers between the warpgroups of a block at run time (<c>setmaxnreg</c>, sm_90a): a producer warpgroup that
/// only issues copies gives most of its registers back, and the consumer warpgroups take them for their accumulators.
/// ptxas allocates the code after each instruction to the new budget.
/// </summary>
/// <remarks>
/// Every thread of a warpgroup must execute it together (<c>.sync.aligned</c>), with budgets that are multiples of 8
/// from 24 to 256; the block's total must stay within the registers it was launched with, or an increase waits forever.
/// The PTX spells the budgets as literals (inline PTX takes constant strings); a PTX test ties them to the constants.
/// No-op on the CPU.
/// </remarks>
public static class RegisterBudget
{
    /// <summary>Registers a producer warpgroup keeps (<see cref="ShrinkToProducer"/>).</summary>
    public const int Producer = 24;

    /// <summary>
    /// Registers a consumer warpgroup grows to (<see cref="GrowToConsumer"/>). A block of one producer and two consumers is
    /// launched with 168 per thread (65536 / 384, rounded down to 8), 504 per lane across its three warpgroups: 24 + 2 · 240.
    /// </summary>
    public const int Consumer = 240;

    /// <summary><c>setmaxnreg.dec</c> to <see cref="Producer"/> registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ShrinkToProducer()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("setmaxnreg.dec.sync.aligned.u32 24;");
    }

    /// <summary><c>setmaxnreg.inc</c> to <see cref="Consumer"/> registers (waits until the producer's are free).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void GrowToConsumer()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("setmaxnreg.inc.sync.aligned.u32 240;");
    }
}
