using SageAttn.Kernels.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>The PTX pass that makes ILGPU's always-taken branches unconditional in kernels that use setmaxnreg.</summary>
public sealed class PtxConstantBranchesTests
{
    private static string Module(string registerMove) => string.Join('\n',
        ".visible .entry Kernel_Run()",
        "{",
        "\t" + registerMove,
        "\tmov.pred\t%p7, 1;",
        "\t@%p7 bra.uni\tL_2;",
        "\tcall.uni (retval), EmulateMma, (param);",
        "L_2:",
        "\tsetp.ne.s32\t%p8, %r1, 0;",
        "\t@%p8 bra.uni\tL_3;",
        "\tmov.pred\t%p9, 0;",
        "\t@%p9 bra\tL_3;",
        "L_3:",
        "\tret;",
        "}");

    [Fact]
    public void AlwaysTakenBranchBecomesUnconditionalWhereRegistersMove()
    {
        string ptx = PtxConstantBranches.Apply(Module("setmaxnreg.inc.sync.aligned.u32 240;"));

        Assert.Contains("\tmov.pred\t%p7, 1;\n\tbra.uni\tL_2;", ptx, StringComparison.Ordinal);
        Assert.DoesNotContain("@%p7", ptx, StringComparison.Ordinal);
        // Branches on computed or false predicates stay conditional.
        Assert.Contains("\t@%p8 bra.uni\tL_3;", ptx, StringComparison.Ordinal);
        Assert.Contains("\t@%p9 bra\tL_3;", ptx, StringComparison.Ordinal);
    }

    [Fact]
    public void KernelsWithoutSetmaxnregAreLeftAsTheyAre()
    {
        string module = Module("mov.u32 %r1, 0;");
        Assert.Equal(module, PtxConstantBranches.Apply(module));
    }
}
