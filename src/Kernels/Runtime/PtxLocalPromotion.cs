using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Turns ILGPU's one-variable local-memory slots into registers in PTX text (a textual mem2reg).
/// </summary>
/// <remarks>
/// <para>Why: ILGPU 1.5.3 lowers every <c>out</c>/<c>ref</c> operand of <c>CudaAsm.Emit</c> (and some locals) to a
/// slot <c>.local .b8 __local_depotN[S]</c> whose address sits in one register and is only stored to and loaded
/// from at offset 0. ptxas usually promotes such slots back to registers, but in the Hopper wgmma kernel it did
/// not: a 936-byte stack frame was touched on every key block (docs/hopper.md). Each such slot is a plain scalar
/// variable of the thread, so replacing <c>st.local.T [p], x</c> by <c>mov.T v, x</c> and <c>ld.local.T y, [p]</c>
/// by <c>mov.T y, v</c> (v a fresh bit-size register of S bytes) keeps the program's meaning exactly.</para>
/// <para>A slot is rewritten only when it is provably such a variable: declared once, its address taken by one
/// <c>mov.b64</c> and that register used by nothing but whole-slot <c>st.local</c>/<c>ld.local</c> of S bytes with
/// no offset. Anything else (arrays, offsets, address arithmetic, 8-bit accesses) is left as it is. Each function
/// body is handled on its own, since PTX registers are function-scoped.</para>
/// </remarks>
public static class PtxLocalPromotion
{
    private static readonly Regex DepotDeclaration = new(
        @"^[ \t]*\.local[ \t]+\.align[ \t]+\d+[ \t]+\.b8[ \t]+(__local_depot\d+)\[(\d+)\];[ \t]*\r?\n",
        RegexOptions.Multiline | RegexOptions.CultureInvariant);

    private static readonly Regex DepotAddress = new(
        @"^[ \t]*mov\.(?:b64|u64)[ \t]+(%rd\d+),[ \t]*(__local_depot\d+);[ \t]*\r?\n",
        RegexOptions.Multiline | RegexOptions.CultureInvariant);

    private static readonly Regex Store = new(
        @"^([ \t]*)st\.local\.(\w+)[ \t]+\[[ \t]*(%rd\d+)[ \t]*\],[ \t]*([^;]+);",
        RegexOptions.CultureInvariant);

    private static readonly Regex Load = new(
        @"^([ \t]*)ld\.local\.(\w+)[ \t]+([^,]+),[ \t]*\[[ \t]*(%rd\d+)[ \t]*\];",
        RegexOptions.CultureInvariant);

    private static readonly Regex FunctionStart = new(
        @"^(?:\.visible[ \t]+|\.weak[ \t]+)?\.(?:entry|func)[ \t]",
        RegexOptions.Multiline | RegexOptions.CultureInvariant);

    private static readonly Regex RegisterName = new(@"%rd\d+", RegexOptions.CultureInvariant);

    private static readonly Regex DepotName = new(@"__local_depot\d+", RegexOptions.CultureInvariant);

    /// <summary>The PTX module with every provably scalar local slot of every function promoted to a register.</summary>
    /// <param name="ptx">A PTX module as ILGPU writes it.</param>
    /// <returns>The rewritten text, and how many slots were promoted and left.</returns>
    public static (string Ptx, int Promoted, int Kept) Apply(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        var starts = FunctionStart.Matches(ptx).Select(m => m.Index).ToList();
        if (starts.Count == 0)
        {
            return (ptx, 0, 0);
        }

        var result = new StringBuilder(ptx.Length);
        result.Append(ptx, 0, starts[0]);
        int promoted = 0, kept = 0;
        for (int i = 0; i < starts.Count; i++)
        {
            int end = i + 1 < starts.Count ? starts[i + 1] : ptx.Length;
            var (body, p, k) = PromoteFunction(ptx[starts[i]..end]);
            result.Append(body);
            promoted += p;
            kept += k;
        }

        return (result.ToString(), promoted, kept);
    }

    private static (string Body, int Promoted, int Kept) PromoteFunction(string body)
    {
        var sizes = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Match m in DepotDeclaration.Matches(body))
        {
            sizes[m.Groups[1].Value] = int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        }

        if (sizes.Count == 0)
        {
            return (body, 0, 0);
        }

        // Address register of each slot; a slot whose address is taken more than once is kept.
        var addressOf = new Dictionary<string, string>(StringComparer.Ordinal);
        var addressCount = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Match m in DepotAddress.Matches(body))
        {
            addressOf[m.Groups[2].Value] = m.Groups[1].Value;
            addressCount[m.Groups[2].Value] = addressCount.GetValueOrDefault(m.Groups[2].Value) + 1;
        }

        // A slot named anywhere but its declaration and its one address move is kept (one pass over the body).
        var mentions = DepotName.Matches(body).GroupBy(m => m.Value, StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.Count(), StringComparer.Ordinal);
        var lines = body.Split('\n');
        var slotOfRegister = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (slot, register) in addressOf)
        {
            if (addressCount[slot] == 1 && sizes.ContainsKey(slot) && mentions[slot] == 2)
            {
                slotOfRegister[register] = slot;
            }
        }

        // Every other use of an address register must be a whole-slot access at offset 0.
        foreach (var line in lines)
        {
            if (line.Contains("__local_depot", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (Match r in RegisterName.Matches(line))
            {
                if (slotOfRegister.TryGetValue(r.Value, out var slot) && !IsWholeSlotAccess(line, r.Value, sizes[slot]))
                {
                    slotOfRegister.Remove(r.Value);
                }
            }
        }

        if (slotOfRegister.Count == 0)
        {
            return (body, 0, sizes.Count);
        }

        var registerOfSlot = new Dictionary<string, string>(StringComparer.Ordinal);
        var counts = new Dictionary<int, int>();
        foreach (var (register, slot) in slotOfRegister.OrderBy(p => p.Value, StringComparer.Ordinal))
        {
            int bytes = sizes[slot];
            int index = counts.GetValueOrDefault(bytes);
            counts[bytes] = index + 1;
            registerOfSlot[register] = $"%lp{bytes * 8}_{index}";
        }

        var output = new StringBuilder(body.Length);
        bool declared = false;
        foreach (var line in lines)
        {
            var declaration = DepotDeclaration.Match(line + "\n");
            if (declaration.Success && slotOfRegister.ContainsValue(declaration.Groups[1].Value))
            {
                if (!declared)
                {
                    foreach (var (bytes, count) in counts.OrderBy(p => p.Key))
                    {
                        output.Append(CultureInfo.InvariantCulture, $"\t.reg .b{bytes * 8} %lp{bytes * 8}_<{count}>;\n");
                    }

                    declared = true;
                }

                continue;
            }

            var address = DepotAddress.Match(line + "\n");
            if (address.Success && registerOfSlot.ContainsKey(address.Groups[1].Value))
            {
                continue;
            }

            output.Append(Rewrite(line, registerOfSlot)).Append('\n');
        }

        output.Length--; // the Split/Append pair added one '\n' too many
        return (output.ToString(), slotOfRegister.Count, sizes.Count - slotOfRegister.Count);
    }

    private static string Rewrite(string line, Dictionary<string, string> registerOfSlot)
    {
        var store = Store.Match(line);
        if (store.Success && registerOfSlot.TryGetValue(store.Groups[3].Value, out var target))
        {
            return $"{store.Groups[1].Value}mov.{store.Groups[2].Value}\t{target}, {store.Groups[4].Value.Trim()};";
        }

        var load = Load.Match(line);
        if (load.Success && registerOfSlot.TryGetValue(load.Groups[4].Value, out var source))
        {
            return $"{load.Groups[1].Value}mov.{load.Groups[2].Value}\t{load.Groups[3].Value.Trim()}, {source};";
        }

        return line;
    }

    private static bool IsWholeSlotAccess(string line, string register, int slotBytes)
    {
        var store = Store.Match(line);
        if (store.Success && store.Groups[3].Value == register)
        {
            return BytesOf(store.Groups[2].Value) == slotBytes && !RegisterName.Matches(store.Groups[4].Value).Any(m => m.Value == register);
        }

        var load = Load.Match(line);
        return load.Success && load.Groups[4].Value == register && BytesOf(load.Groups[2].Value) == slotBytes
            && !RegisterName.Matches(load.Groups[3].Value).Any(m => m.Value == register);
    }

    /// <summary>Bytes of a PTX scalar type suffix (b16, f32, u64, ...); 0 for 8-bit and unknown types, which are kept.</summary>
    private static int BytesOf(string type) => type switch
    {
        "b16" or "u16" or "s16" or "f16" or "bf16" => 2,
        "b32" or "u32" or "s32" or "f32" => 4,
        "b64" or "u64" or "s64" or "f64" => 8,
        _ => 0,
    };
}
