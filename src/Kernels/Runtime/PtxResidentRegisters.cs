using System.Text.RegularExpressions;
using SageAttn.Kernels.Intrinsics;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Moves the declarations of resident registers (<see cref="ResidentPv"/>, <see cref="ResidentFp8Pv"/>) to the top of
/// the function that declares them. The kernel declares them with inline PTX at function scope, and ILGPU lays out basic
/// blocks in its own order, so a block that uses them can come before the declaring block in the text; ptxas wants a
/// declaration before its first use.
/// </summary>
public static class PtxResidentRegisters
{
    private static readonly string[] Markers = [ResidentPv.DeclarationMarker, ResidentFp8Pv.DeclarationMarker];

    private static readonly Regex FunctionHeader = new(@"^(?:\.visible[ \t]+|\.weak[ \t]+)?\.(?:entry|func)[ \t]", RegexOptions.CultureInvariant);

    /// <summary>The module with each resident-register declaration moved to just after its function's opening brace.</summary>
    /// <param name="ptx">A PTX module as ILGPU writes it.</param>
    /// <exception cref="InvalidOperationException">A declaration has no function body above it.</exception>
    public static string Hoist(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        if (!Markers.Any(m => ptx.Contains(m, StringComparison.Ordinal)))
            return ptx;
        var lines = ptx.Split('\n').ToList();
        for (int i = 0; i < lines.Count; i++)
        {
            if (!Markers.Any(m => lines[i].Contains(m, StringComparison.Ordinal)))
                continue;
            // The declaring function is the last .entry / .func header above; its body opens at the first bare "{" after
            // the header (the parameter list and performance directives come first, whatever they are).
            int header = i - 1;
            while (header >= 0 && !FunctionHeader.IsMatch(lines[header]))
                header--;
            int brace = header < 0 ? -1 : lines.FindIndex(header, i - header, l => l.Trim() == "{");
            if (brace < 0)
                throw new InvalidOperationException("A resident-register declaration has no function body above it in the PTX.");
            string declaration = lines[i];
            lines.RemoveAt(i);
            lines.Insert(brace + 1, declaration);
        }
        return string.Join('\n', lines);
    }
}
