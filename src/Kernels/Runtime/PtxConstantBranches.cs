using System.Text.RegularExpressions;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Makes ILGPU's always-taken branches unconditional in kernels that move registers between warpgroups
/// (<c>setmaxnreg</c>). ILGPU folds <c>CudaAsm.IsSupported</c> into <c>mov.pred %p, 1; @%p bra L</c>, which keeps the CPU
/// emulation's code — calls to emulation functions included — reachable in ptxas's eyes; with calls in the kernel ptxas
/// ignores <c>setmaxnreg</c> (C7507) and the consumers stay at the launch budget. As <c>bra.uni L</c> the emulation code
/// is dead and ptxas drops it. Other kernels are left as they were measured.
/// </summary>
public static partial class PtxConstantBranches
{
    [GeneratedRegex(@"(mov\.pred[ \t]+(%p\d+), 1;\s*)@\2 bra(?:\.uni)?[ \t]+", RegexOptions.CultureInvariant)]
    private static partial Regex AlwaysTaken();

    /// <summary>The module with each branch on a predicate set to true just before it made unconditional, if it uses <c>setmaxnreg</c>.</summary>
    /// <param name="ptx">A PTX module as ILGPU writes it.</param>
    public static string Apply(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        if (!ptx.Contains("setmaxnreg", StringComparison.Ordinal))
            return ptx;
        return AlwaysTaken().Replace(ptx, m => m.Groups[1].Value + "bra.uni\t");
    }
}
