using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>Special functions on the fast hardware path.</summary>
public static class FastMath
{
    /// <summary>
    /// 2^x with <c>ex2.approx.ftz.f32</c> (max 2 ulp error on the GPU; the CPU accelerator computes it
    /// with the runtime's exp2). The softmax needs nothing more: its inputs are already rounded logits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exp2(float x)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("ex2.approx.ftz.f32 %0, %1;", out float result, x);
            return result;
        }
        return IntrinsicMath.CPUOnly.Exp2(x);
    }

    /// <summary>log2(x) with <c>lg2.approx.ftz.f32</c> (for the log-sum-exp output only).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Log2(float x)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("lg2.approx.ftz.f32 %0, %1;", out float result, x);
            return result;
        }
        return IntrinsicMath.CPUOnly.Log2(x);
    }
}
