namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// One lane's share of a 16x8 tensor-core accumulator tile with 32-bit elements.
/// Lane (g = lane / 4, t = lane % 4) holds C0 = (row g, col 2t), C1 = (g, 2t + 1),
/// C2 = (g + 8, 2t), C3 = (g + 8, 2t + 1).
/// </summary>
public struct Float4Frag
{
    public float C0, C1, C2, C3;
}

/// <summary>The integer accumulator of an INT8 tile, same lane ownership as <see cref="Float4Frag"/>.</summary>
public struct Int4Frag
{
    public int C0, C1, C2, C3;
}

/// <summary>
/// One lane's share of a 16x8 FP16 accumulator: Lo = row g, cols 2t and 2t + 1 (packed fp16x2),
/// Hi = row g + 8, same columns.
/// </summary>
public struct Half4Frag
{
    public uint Lo, Hi;
}

/// <summary>
/// One lane's A operand of mma.m16n8k32 with 8-bit elements (16x32, row-major), 4 bytes per register:
/// R0 = row g, k 4t..4t+3; R1 = row g + 8, same k; R2 = row g, k 16+4t..; R3 = row g + 8, k 16+4t..
/// For the f16 m16n8k16 product the same registers hold 2 halves each:
/// R0 = row g, k 2t, 2t+1; R1 = row g + 8; R2 = row g, k 8+2t, 9+2t; R3 = row g + 8, k 8+2t, 9+2t.
/// </summary>
public struct AFrag
{
    public uint R0, R1, R2, R3;
}

/// <summary>
/// One lane's B operand (column-major 32x8 for 8-bit elements): R0 = column g, k 4t..4t+3;
/// R1 = column g, k 16+4t.. For f16 (16x8): R0 = column g, k 2t, 2t+1; R1 = column g, k 8+2t, 9+2t.
/// </summary>
public struct BFrag
{
    public uint R0, R1;
}
