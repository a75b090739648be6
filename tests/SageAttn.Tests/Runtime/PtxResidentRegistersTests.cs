using SageAttn.Kernels.Intrinsics;
using SageAttn.Kernels.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>The PTX pass that moves the resident registers' declaration to the top of the declaring function.</summary>
public sealed class PtxResidentRegistersTests
{
    [Fact]
    public void DeclarationMovesToTheTopOfItsOwnFunction()
    {
        string declaration = "\t" + ResidentPv.DeclarationMarker + " .reg .b32 sgp<16>, sgq<16>;";
        string ptx = string.Join('\n',
            ".version 8.8",
            ".visible .func Helper(",
            "\t.param .b32 _x",
            ")",
            "{",
            "\tret;",
            "}",
            ".visible .entry Kernel_Run(",
            "\t.param .b32 _y",
            ")",
            ".maxntid 384, 1, 1",
            ".reqnctapercluster 1, 1, 1",
            "{",
            "\t.reg .b32\t%r<4>;",
            "\tbra.uni\tL_2;",
            "L_1:",
            "\tmul.f32 sgo0, sgo0, %f1;",
            "\tret;",
            "L_2:",
            declaration,
            "\t{ .reg .pred po; mov.f32 sgo0, 0f00000000; }",
            "\tbra.uni\tL_1;",
            "}");

        string[] lines = PtxResidentRegisters.Hoist(ptx).Split('\n');

        int entryBrace = Array.IndexOf(lines, ".reqnctapercluster 1, 1, 1") + 1;
        Assert.Equal("{", lines[entryBrace]);
        Assert.Equal(declaration, lines[entryBrace + 1]);
        Assert.Single(lines, l => l.Contains(ResidentPv.DeclarationMarker, StringComparison.Ordinal));
        // Every other line is kept, in order.
        Assert.Equal(ptx.Split('\n').Where(l => l != declaration), lines.Where(l => l != declaration));
    }

    [Fact]
    public void DeclarationOutsideAnyFunctionThrows()
    {
        string ptx = ".version 8.8\n\t" + ResidentPv.DeclarationMarker + "\n";
        Assert.Throws<InvalidOperationException>(() => PtxResidentRegisters.Hoist(ptx));
    }

    [Fact]
    public void PtxWithoutResidentRegistersIsUnchanged()
    {
        const string ptx = ".version 8.8\n.visible .entry K(\n)\n{\n\tret;\n}\n";
        Assert.Same(ptx, PtxResidentRegisters.Hoist(ptx));
    }

    [Fact]
    public void Fp8ResidentDeclarationIsHoistedToo()
    {
        string ptx = string.Join('\n',
            ".visible .entry Kernel_Run()",
            "{",
            "\t.reg .b32\t%r<4>;",
            "\tbra.uni\tL_2;",
            "L_1:",
            "\tmov.f32 %f1, sga0;",
            "\tret;",
            "L_2:",
            "\t" + ResidentFp8Pv.DeclarationMarker + " .reg .f32 sgs<4>; .reg .b32 sgp<8>;",
            "\tbra.uni\tL_1;",
            "}");

        string[] lines = PtxResidentRegisters.Hoist(ptx).Split('\n');

        Assert.StartsWith("\t" + ResidentFp8Pv.DeclarationMarker, lines[2], StringComparison.Ordinal);
    }
}
