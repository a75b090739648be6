using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// Shared-memory transaction barriers (<c>mbarrier</c>, sm_90): a 64-bit word in shared memory that completes a
/// phase when its expected arrivals and expected bytes (<see cref="TensorCopy"/> completions) are all in. Waits name
/// the phase by its parity, so a waiter must never fall two phases behind the barrier.
/// </summary>
/// <remarks>
/// On ILGPU's CPU accelerator the tensor copies complete when issued, so there is nothing to wait for: arrivals and
/// per-thread waits are no-ops, and <see cref="WaitBlock"/> (called by every thread of the block) is a block barrier,
/// which orders the issuing thread's copies before every use.
/// </remarks>
public static class Mbarrier
{
    /// <summary>Bytes of one barrier in shared memory.</summary>
    public const int Bytes = 8;

    /// <summary><c>mbarrier.init</c>: the barrier at shared address <paramref name="address"/> expects <paramref name="arrivals"/> arrivals per phase.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Init(uint address, int arrivals)
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("mbarrier.init.shared::cta.b64 [%0], %1;", address, arrivals);
    }

    /// <summary>
    /// <c>fence.mbarrier_init</c>: makes this thread's <see cref="Init"/>s visible to the copy engine's completions;
    /// a block barrier must follow before any thread uses the barriers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FenceInit()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("fence.mbarrier_init.release.cluster;");
    }

    /// <summary>One arrival that also expects <paramref name="bytes"/> more bytes of copies to land in this phase.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ArriveExpectBytes(uint address, int bytes)
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;", address, bytes);
    }

    /// <summary>
    /// One arrival per warp on the barrier at <paramref name="address"/>: the lane <c>elect.sync</c> picks arrives, so
    /// no lane index is read or compared. Release: the warp's earlier reads of the guarded data are done. Every lane of the
    /// warp must call it together. No-op on the CPU.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ArriveOncePerWarp(uint address)
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("{ .reg .pred one; elect.sync _|one, 0xffffffff; @one mbarrier.arrive.shared::cta.b64 _, [%0]; }", address);
    }

    /// <summary>This thread waits until the phase of parity <paramref name="parity"/> has completed (acquire). No-op on the CPU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Wait(uint address, int parity)
    {
        if (CudaAsm.IsSupported)
        {
            // The poll loop in PTX itself (labels are local to the braces): two instructions per poll instead of four
            // for a C# loop around a predicate returned as a value.
            CudaAsm.Emit("{ .reg .pred done; WAIT: mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1; @!done bra WAIT; }",
                address, parity);
        }
    }

    /// <summary>
    /// Every thread of the block waits for the phase of parity <paramref name="parity"/>: on the GPU each thread polls
    /// the barrier; on the CPU it is a block barrier (see the remarks). All threads of the block must call it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WaitBlock(uint address, int parity)
    {
        if (CudaAsm.IsSupported)
            Wait(address, parity);
        else
            Group.Barrier();
    }
}
