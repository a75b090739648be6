#!/usr/bin/env python3
"""Generates the unrolled warp steps of the paged decode kernel (src/Kernels/Attention/Generated/DecodeTile.g.cs).

Same reasons as tools/generate_tiles.py: ILGPU 1.5.3 does not unroll loops, and fragments indexed by a
loop variable would live in local memory. Head dim 64 or 128: code for channels 64..127 is guarded by
`wide`, a compile-time constant of the specialized kernel.

Channel order of Q·Kᵀ (why K needs no shared memory): the dot product over channels does not care about
their order as long as Q and K agree. Lane (g, t) loads 16 bytes of a key row, channels 32p + 8t .. + 7,
and uses them as the B registers of the two k16 steps 2p and 2p + 1 (elements 0-1, 2-3 for step 2p, 4-5,
6-7 for step 2p + 1). Q's A registers are gathered with the same mapping once per thread block.

Run: python3 tools/generate_decode_tiles.py   (from the repository root; output is committed)
"""
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "src", "Kernels", "Attention", "Generated", "DecodeTile.g.cs")
INLINE = "[MethodImpl(MethodImplOptions.AggressiveInlining)]"
CHUNKS, NTILES, VCHUNKS = 4, 16, 8  # head dim 128: 32-channel chunks, n8 output tiles, 16-byte V chunks per lane


def guard(i, limit, line):
    return f"        if (wide) {{ {line} }}" if i >= limit else f"        {line}"


def structs():
    q = ", ".join(f"S{s}" for s in range(2 * CHUNKS))
    o = ", ".join(f"N{n}" for n in range(NTILES))
    k = ", ".join([f"Lo{p}" for p in range(CHUNKS)] + [f"Hi{p}" for p in range(CHUNKS)])
    return f"""
/// <summary>Q's A registers for the k16 steps over the head dimension (step s = S{{s}}), channel order as in <see cref="DecodeTile"/>.</summary>
public struct DecodeQuery
{{
    public AFrag {q};
}}

/// <summary>The FP32 output accumulator of a warp: n8 tile n = channels 8n .. 8n + 7 (N{{n}}).</summary>
public struct DecodeOutput
{{
    public Float4Frag {o};
}}

/// <summary>The B registers of Q·Kᵀ for one 16-key tile: Lo{{p}} = key g, Hi{{p}} = key 8 + g, channels 32p + 8t .. + 7.</summary>
public struct DecodeKeys
{{
    public Vec4 {k};
}}

/// <summary>One lane's share of a 16-key V tile on its way to shared memory (16 bytes per chunk).</summary>
public struct DecodeValues
{{
    public Vec4 {", ".join(f"C{i}" for i in range(VCHUNKS))};
}}
"""


def ops():
    half = CHUNKS // 2
    lines = []
    lines.append(f"""
/// <summary>The per-warp steps of the paged decode kernel for one 16-key tile, unrolled.</summary>
public static class DecodeTile
{{
    /// <summary>
    /// Gathers Q's A registers: rows g (<paramref name="rowLo"/>) and g + 8 (<paramref name="rowHi"/>) as element offsets, −1 for
    /// padding rows (zeros). Step 2p holds channels 32p + 8t + 0..3, step 2p + 1 channels 32p + 8t + 4..7.
    /// </summary>
    {INLINE}
    public static void LoadQuery(ref DecodeQuery q, ArrayView<ushort> src, long rowLo, long rowHi, int t, bool wide)
    {{""")
    for p in range(CHUNKS):
        lines.append(guard(p, half, f"LoadQueryChunk(src, rowLo, rowHi, {32 * p} + 8 * t, out q.S{2 * p}, out q.S{2 * p + 1});"))
    lines.append(f"""    }}

    {INLINE}
    private static void LoadQueryChunk(ArrayView<ushort> src, long rowLo, long rowHi, int channel, out AFrag even, out AFrag odd)
    {{
        even.R0 = Pair(src, rowLo, channel); even.R1 = Pair(src, rowHi, channel);
        even.R2 = Pair(src, rowLo, channel + 2); even.R3 = Pair(src, rowHi, channel + 2);
        odd.R0 = Pair(src, rowLo, channel + 4); odd.R1 = Pair(src, rowHi, channel + 4);
        odd.R2 = Pair(src, rowLo, channel + 6); odd.R3 = Pair(src, rowHi, channel + 6);
    }}

    {INLINE}
    private static uint Pair(ArrayView<ushort> src, long row, int channel) =>
        row < 0 ? 0u : src[row + channel] | ((uint)src[row + channel + 1] << 16);

    /// <summary>
    /// Loads the lane's key rows: key g at chunk <paramref name="chunkLo"/>, key 8 + g at <paramref name="chunkHi"/> (16-byte units,
    /// −1 for keys past the end: zeros, so no garbage enters the product), 16 bytes per 32 channels.
    /// </summary>
    {INLINE}
    public static void LoadKeys(ref DecodeKeys k, ArrayView<Vec4> cache, long chunkLo, long chunkHi, int t, bool wide)
    {{""")
    for p in range(CHUNKS):
        lines.append(guard(p, half, f"k.Lo{p} = LoadChunk(cache, chunkLo, {4 * p} + t); k.Hi{p} = LoadChunk(cache, chunkHi, {4 * p} + t);"))
    lines.append(f"""    }}

    {INLINE}
    private static Vec4 LoadChunk(ArrayView<Vec4> cache, long row, int chunk) => row < 0 ? default : cache[row + chunk];

    /// <summary>S = Q·Kᵀ for the tile: <paramref name="s0"/> = keys 0..7, <paramref name="s1"/> = keys 8..15 (FP32, unscaled).</summary>
    {INLINE}
    public static void Scores(ref Float4Frag s0, ref Float4Frag s1, in DecodeQuery q, in DecodeKeys k, bool wide, bool bf16)
    {{""")
    for p in range(CHUNKS):
        body = (f"Mma(ref s0, q.S{2 * p}, k.Lo{p}.X, k.Lo{p}.Y, bf16); Mma(ref s1, q.S{2 * p}, k.Hi{p}.X, k.Hi{p}.Y, bf16); "
                f"Mma(ref s0, q.S{2 * p + 1}, k.Lo{p}.Z, k.Lo{p}.W, bf16); Mma(ref s1, q.S{2 * p + 1}, k.Hi{p}.Z, k.Hi{p}.W, bf16);")
        lines.append(guard(p, half, body))
    lines.append(f"""    }}

    {INLINE}
    private static void Mma(ref Float4Frag d, in AFrag a, uint b0, uint b1, bool bf16)
    {{
        BFrag b;
        b.R0 = b0;
        b.R1 = b1;
        if (bf16)
            TensorCore.MmaBf16(ref d, a, b);
        else
            TensorCore.MmaF16(ref d, a, b);
    }}

    /// <summary>
    /// Loads the lane's share of the tile's V rows: the 16 rows are contiguous in the cache block, so chunk c of the tile
    /// (16 bytes) is <paramref name="tileChunk"/> + c; the lane takes c = lane + 32i. Chunks of keys ≥ <paramref name="validKeys"/> are zeros.
    /// </summary>
    {INLINE}
    public static void LoadValues(ref DecodeValues v, ArrayView<Vec4> cache, long tileChunk, int lane, int chunksPerRow, int validKeys, bool wide)
    {{""")
    for i in range(VCHUNKS):
        lines.append(guard(i, VCHUNKS // 2, f"v.C{i} = (lane + {32 * i}) / chunksPerRow < validKeys ? cache[tileChunk + lane + {32 * i}] : default;"))
    lines.append(f"""    }}

    /// <summary>Stores the lane's V chunks into the warp's shared tile, rows <paramref name="strideChunks"/> apart (16 bytes of padding per row).</summary>
    {INLINE}
    public static void StoreValues(in DecodeValues v, ArrayView<Vec4> tile, int lane, int chunksPerRow, int strideChunks, bool wide)
    {{""")
    for i in range(VCHUNKS):
        lines.append(guard(i, VCHUNKS // 2, f"StoreChunk(tile, lane + {32 * i}, chunksPerRow, strideChunks, v.C{i});"))
    lines.append(f"""    }}

    {INLINE}
    private static void StoreChunk(ArrayView<Vec4> tile, int chunk, int chunksPerRow, int strideChunks, Vec4 value) =>
        tile[chunk / chunksPerRow * strideChunks + (chunk & (chunksPerRow - 1))] = value;

    /// <summary>O *= per-row factor (online-softmax rescale): <paramref name="lo"/> for row g, <paramref name="hi"/> for row g + 8.</summary>
    {INLINE}
    public static void Rescale(ref DecodeOutput o, float lo, float hi, bool wide)
    {{""")
    for n in range(NTILES):
        lines.append(guard(n, NTILES // 2, f"o.N{n}.C0 *= lo; o.N{n}.C1 *= lo; o.N{n}.C2 *= hi; o.N{n}.C3 *= hi;"))
    lines.append(f"""    }}

    /// <summary>
    /// O += P·V. <paramref name="row"/> = 2t · stride + g indexes the shared V tile (16-bit elements, row-major
    /// [key][channel]); the B registers of n8 tile n are keys (2t, 2t + 1) and (8 + 2t, 9 + 2t) of channel 8n + g.
    /// </summary>
    {INLINE}
    public static void Pv(ref DecodeOutput o, in AFrag p, ArrayView<ushort> tile, int row, int stride, bool wide, bool bf16)
    {{""")
    for n in range(NTILES):
        lines.append(guard(n, NTILES // 2, f"PvStep(ref o.N{n}, p, tile, row + {8 * n}, stride, bf16);"))
    lines.append(f"""    }}

    {INLINE}
    private static void PvStep(ref Float4Frag o, in AFrag p, ArrayView<ushort> tile, int index, int stride, bool bf16) =>
        Mma(ref o, p, tile[index] | ((uint)tile[index + stride] << 16),
            tile[index + 8 * stride] | ((uint)tile[index + 9 * stride] << 16), bf16);

    /// <summary>Writes the lane's O elements to shared memory: row g at float offset <paramref name="rowLo"/>, row g + 8 at <paramref name="rowHi"/>.</summary>
    {INLINE}
    public static void StoreOutput(in DecodeOutput o, ArrayView<float> dst, int rowLo, int rowHi, int t, bool wide)
    {{""")
    for n in range(NTILES):
        lines.append(guard(n, NTILES // 2, f"StoreFrag(o.N{n}, dst, rowLo, rowHi, {8 * n} + 2 * t);"))
    lines.append(f"""    }}

    {INLINE}
    private static void StoreFrag(in Float4Frag f, ArrayView<float> dst, int rowLo, int rowHi, int channel)
    {{
        dst[rowLo + channel] = f.C0;
        dst[rowLo + channel + 1] = f.C1;
        dst[rowHi + channel] = f.C2;
        dst[rowHi + channel + 1] = f.C3;
    }}
}}
""")
    return "\n".join(lines)


HEADER = """// <auto-generated>
// Generated by tools/generate_decode_tiles.py — edit the generator, not this file.
// </auto-generated>
#nullable enable
using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Kernels.Intrinsics;

namespace SageAttn.Kernels.Attention;
"""

with open(OUT, "w") as f:
    f.write(HEADER + structs() + ops())
