using System.Runtime.CompilerServices;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// Turns of a block's two consumer warpgroups at the tensor cores (FA3's ping-pong), on hardware barriers 1 and 2 (0 is
/// the block barrier), each counting 256 threads: consumer c waits on its own barrier before it issues products
/// (<see cref="Take"/>) and arrives on the other's right after issuing (<see cref="Pass"/>), so the other's products
/// queue behind its own while it runs its softmax.
/// </summary>
/// <remarks>
/// Consumer 1 passes once before its first turn (<see cref="Start"/>) so consumer 0 goes first, and consumer 0 takes
/// that last pass after its final turn (<see cref="Finish"/>), so no arrival is pending when the block exits. Both must
/// take the same number of turns. The ids are registers, so no branch joins between a product's issue and its wait
/// (where ptxas would serialize the wgmma); ptxas then reserves all 16 hardware barriers, which a block alone on its SM
/// can afford. Every thread of the warpgroup takes part. No-ops on the CPU, where turns order nothing that the results
/// depend on.
/// </remarks>
public static class WarpGroupTurns
{
    /// <summary>Waits for consumer <paramref name="consumer"/>'s (0 or 1) turn.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Take(int consumer)
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("bar.sync %0, 256;", 1 + consumer);
    }

    /// <summary>Gives the turn to the other consumer, without waiting.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Pass(int consumer)
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("bar.arrive %0, 256;", 2 - consumer);
    }

    /// <summary>Before the first turn: consumer 1 lets consumer 0 go first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Start(int consumer)
    {
        if (consumer == 1)
            Pass(1);
    }

    /// <summary>After the last turn: consumer 0 takes consumer 1's last pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Finish(int consumer)
    {
        if (consumer == 0)
            Take(0);
    }
}
