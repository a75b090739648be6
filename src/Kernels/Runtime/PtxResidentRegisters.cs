using System.Text;
using SageAttn.Kernels.Intrinsics;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Moves the declaration of <see cref="ResidentPv"/>'s registers to the top of the function that declares them. The
/// kernel declares them with inline PTX at function scope, and ILGPU lays out basic blocks in its own order, so a block
/// that uses them can come before the declaring block in the text; ptxas wants a declaration before its first use.
/// </summary>
public static class PtxResidentRegisters
{
    /// <summary>The module with each resident-register declaration moved to just after its function's opening brace.</summary>
    /// <param name="ptx">A PTX module as ILGPU writes it.</param>
    /// <exception cref="InvalidOperationException">A declaration has no function body above it.</exception>
    public static string Hoist(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        if (!ptx.Contains(ResidentPv.DeclarationMarker, StringComparison.Ordinal))
            return ptx;
        var lines = ptx.Split('\n').ToList();
        for (int i = 0; i < lines.Count; i++)
        {
            if (!lines[i].Contains(ResidentPv.DeclarationMarker, StringComparison.Ordinal))
                continue;
            int brace = i - 1;
            while (brace >= 0 && lines[brace].Trim() != "{")
                brace--;
            // The function body's brace is the first line "{" after its header; inner blocks of ILGPU's PTX are never a bare "{" line.
            while (brace >= 0 && !IsFunctionBodyBrace(lines, brace))
            {
                brace--;
                while (brace >= 0 && lines[brace].Trim() != "{")
                    brace--;
            }
            if (brace < 0)
                throw new InvalidOperationException("A resident-register declaration has no function body above it in the PTX.");
            string declaration = lines[i];
            lines.RemoveAt(i);
            lines.Insert(brace + 1, declaration);
        }
        var result = new StringBuilder(ptx.Length);
        return result.AppendJoin('\n', lines).ToString();
    }

    private static bool IsFunctionBodyBrace(List<string> lines, int brace)
    {
        // The header of an .entry / .func ends with ")" (parameter list) or with performance directives (.maxntid etc.).
        for (int j = brace - 1; j >= 0; j--)
        {
            string t = lines[j].Trim();
            if (t.Length == 0)
                continue;
            return t.EndsWith(')') || t.StartsWith(".maxntid", StringComparison.Ordinal) || t.StartsWith(".minnctapersm", StringComparison.Ordinal)
                || t.StartsWith(".reqntid", StringComparison.Ordinal) || t.StartsWith(".maxnreg", StringComparison.Ordinal);
        }
        return false;
    }
}
