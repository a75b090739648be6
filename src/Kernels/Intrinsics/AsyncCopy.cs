using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// Asynchronous global → shared copies (<c>cp.async</c>, sm_80+), shared-window addresses for wgmma
/// descriptors, and the proxy fence that makes ordinary shared-memory writes visible to wgmma.
/// On ILGPU's CPU accelerator a copy completes at once and the waits and fences are no-ops.
/// </summary>
/// <remarks>
/// Shared addresses on the CPU are byte offsets from the start of dynamic shared memory, which is what the
/// emulation of <see cref="WarpGroupMma"/> decodes from a descriptor. On the GPU they are addresses in the
/// shared window.
/// </remarks>
public static class AsyncCopy
{
    /// <summary>
    /// The shared-window byte address of byte <paramref name="byteOffset"/> of dynamic shared memory (on the GPU
    /// <c>__dyn_shared_alloca</c>, ILGPU 1.5.3's name for it, plus the offset; on the CPU the offset itself).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SharedAddress(int byteOffset)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mov.u32 %0, __dyn_shared_alloca;", out uint address);
            return address + (uint)byteOffset;
        }
        return (uint)byteOffset;
    }

    /// <summary>
    /// Copies 16 bytes, words <paramref name="globalWord"/>..+3 of <paramref name="global"/>, to words
    /// <paramref name="sharedWord"/>..+3 of dynamic shared memory <paramref name="shared"/> with
    /// <c>cp.async.cg.shared.global</c> (L2 only: a tile is read once per block). Both must be 16-byte aligned.
    /// </summary>
    /// <param name="shared">The view of all dynamic shared memory (word 0 = <see cref="SharedAddress"/>(0)).</param>
    /// <param name="sharedWord">Destination word.</param>
    /// <param name="global">The source view, used by the CPU emulation.</param>
    /// <param name="globalAddress">
    /// The device address of <paramref name="global"/>'s element 0, used on the GPU: ILGPU 1.5.3 offers no
    /// kernel-side way to take a view's address, so the host passes it as a kernel parameter.
    /// </param>
    /// <param name="globalWord">Source word.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy16(ArrayView<uint> shared, int sharedWord, ArrayView<uint> global, long globalAddress, long globalWord)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cp.async.cg.shared.global [%0], [%1], 16;", SharedAddress(sharedWord * sizeof(uint)), globalAddress + globalWord * sizeof(uint));
            return;
        }
        shared[sharedWord] = global[globalWord];
        shared[sharedWord + 1] = global[globalWord + 1];
        shared[sharedWord + 2] = global[globalWord + 2];
        shared[sharedWord + 3] = global[globalWord + 3];
    }

    /// <summary><c>cp.async.commit_group</c>: closes the group of copies issued since the last commit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Commit()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("cp.async.commit_group;");
    }

    /// <summary><c>cp.async.wait_group 0</c>: every committed group of this thread has landed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WaitAll()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("cp.async.wait_group 0;");
    }

    /// <summary><c>cp.async.wait_group 1</c>: all but the most recent group of this thread have landed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WaitAllButLast()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("cp.async.wait_group 1;");
    }

    /// <summary><c>cp.async.wait_group 2</c>: all but the two most recent groups of this thread have landed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WaitAllButTwo()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("cp.async.wait_group 2;");
    }

    /// <summary>
    /// <c>fence.proxy.async.shared::cta</c>: this thread's earlier shared-memory writes (ordinary stores or
    /// landed cp.async) become visible to the async proxy that wgmma reads through; a barrier must follow.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FenceProxyAsync()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("fence.proxy.async.shared::cta;");
    }
}
