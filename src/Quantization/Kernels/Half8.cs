using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Quantization.Formats;

namespace SageAttn.Quantization.Kernels;

/// <summary>Eight fp16/bf16 bit patterns in 16 bytes: one vector load of eight adjacent channels of a token row.</summary>
/// <remarks>Element i sits in word i / 2, low half first (little-endian memory order).</remarks>
public struct Half8
{
    public uint W0, W1, W2, W3;

    /// <summary>
    /// Channels c0 .. c0 + 7 of token <paramref name="n"/> as raw bits, zero past the real channels and for
    /// rows past the tokens. A full, 16-byte-aligned slice is one <c>ld.global.v4</c> when
    /// <paramref name="vector"/> holds (the tensor's first element is 16-byte aligned); other slices are read
    /// element by element.
    /// </summary>
    /// <remarks>Only raw bits come back: decoding here would make the load's first use immediate, and the
    /// callers issue all their loads before using any so they are in flight together.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Half8 Load(in StridedTensor t, int b, int h, int n, int c0, bool vector)
    {
        long offset = t.RowOffset(b, h, n) + c0;
        return LoadAt(t, offset, n, c0, vector && c0 + 8 <= t.HeadDim && (offset & 7) == 0);
    }

    /// <summary>
    /// <see cref="Load"/> at element <paramref name="offset"/> (of token <paramref name="n"/>, channel <paramref name="c0"/>),
    /// with one 16-byte load when <paramref name="wide"/> (the caller checked the slice is full and 16-byte aligned).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Half8 LoadAt(in StridedTensor t, long offset, int n, int c0, bool wide)
    {
        var r = default(Half8);
        if (n >= t.Tokens)
            return r;
        if (wide)
            return t.Data.Cast<Half8>()[offset / 8];
        r.W0 = Element(t, offset, c0) | (Element(t, offset + 1, c0 + 1) << 16);
        r.W1 = Element(t, offset + 2, c0 + 2) | (Element(t, offset + 3, c0 + 3) << 16);
        r.W2 = Element(t, offset + 4, c0 + 4) | (Element(t, offset + 5, c0 + 5) << 16);
        r.W3 = Element(t, offset + 6, c0 + 6) | (Element(t, offset + 7, c0 + 7) << 16);
        return r;
    }

    /// <summary>The eight values as floats (exact: fp16 and bf16 embed in binary32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Float8 Decode(int elementType) => new()
    {
        F0 = DeviceConvert.ToFloat((ushort)W0, elementType), F1 = DeviceConvert.ToFloat((ushort)(W0 >> 16), elementType),
        F2 = DeviceConvert.ToFloat((ushort)W1, elementType), F3 = DeviceConvert.ToFloat((ushort)(W1 >> 16), elementType),
        F4 = DeviceConvert.ToFloat((ushort)W2, elementType), F5 = DeviceConvert.ToFloat((ushort)(W2 >> 16), elementType),
        F6 = DeviceConvert.ToFloat((ushort)W3, elementType), F7 = DeviceConvert.ToFloat((ushort)(W3 >> 16), elementType),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Element(in StridedTensor t, long offset, int c) => c < t.HeadDim ? t.Data[offset] : 0u;
}

/// <summary>Eight floats of one thread (channels c0 .. c0 + 7), held in registers as named fields.</summary>
public struct Float8
{
    public float F0, F1, F2, F3, F4, F5, F6, F7;

    /// <summary>Eight consecutive floats of a (shared-memory) view starting at <paramref name="first"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float8 Read(ArrayView<float> view, int first) => new()
    {
        F0 = view[first], F1 = view[first + 1], F2 = view[first + 2], F3 = view[first + 3],
        F4 = view[first + 4], F5 = view[first + 5], F6 = view[first + 6], F7 = view[first + 7],
    };

    /// <summary>(x − center) for a real token row, 0 for a padding row (the references never shift padding).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Float8 Centered(in Float8 center, bool valid) => !valid ? default : new()
    {
        F0 = F0 - center.F0, F1 = F1 - center.F1, F2 = F2 - center.F2, F3 = F3 - center.F3,
        F4 = F4 - center.F4, F5 = F5 - center.F5, F6 = F6 - center.F6, F7 = F7 - center.F7,
    };

    /// <summary>Largest magnitude of the eight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float AbsMax() =>
        Math.Max(Math.Max(Math.Max(Math.Abs(F0), Math.Abs(F1)), Math.Max(Math.Abs(F2), Math.Abs(F3))),
            Math.Max(Math.Max(Math.Abs(F4), Math.Abs(F5)), Math.Max(Math.Abs(F6), Math.Abs(F7))));
}
