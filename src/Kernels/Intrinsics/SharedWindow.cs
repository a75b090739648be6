using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// Shared-window addresses (for wgmma descriptors, copy-engine destinations and mbarriers) and the proxy fence that
/// makes ordinary shared-memory writes visible to the asynchronous units (wgmma, the copy engine).
/// On ILGPU's CPU accelerator the fence is a no-op.
/// </summary>
/// <remarks>
/// Shared addresses on the CPU are byte offsets from the start of dynamic shared memory, which is what the
/// emulation of <see cref="WarpGroupMma"/> decodes from a descriptor. On the GPU they are addresses in the
/// shared window.
/// </remarks>
public static class SharedWindow
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
    /// <c>fence.proxy.async.shared::cta</c>: this thread's earlier ordinary shared-memory writes become visible to
    /// the async proxy that wgmma reads through; a barrier must follow.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FenceProxyAsync()
    {
        if (CudaAsm.IsSupported)
            CudaAsm.Emit("fence.proxy.async.shared::cta;");
    }
}
