using System.Collections.Concurrent;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;

namespace SageAttn.Kernels.Runtime;

/// <summary>What a leaf of a kernel parameter's device image holds.</summary>
public enum KernelParamFieldKind
{
    /// <summary>A 4-byte <c>int</c>/<c>uint</c> (or an enum of that size, or a <c>SpecializedValue&lt;int&gt;</c> slot).</summary>
    Int32,
    /// <summary>An 8-byte <c>long</c>/<c>ulong</c>.</summary>
    Int64,
    /// <summary>A 4-byte <c>float</c>.</summary>
    Float32,
    /// <summary>An 8-byte <c>double</c>.</summary>
    Float64,
    /// <summary>A 2-byte <c>short</c>/<c>ushort</c>.</summary>
    Int16,
    /// <summary>A 1-byte <c>sbyte</c>/<c>byte</c>.</summary>
    Int8,
    /// <summary>An <c>ArrayView&lt;T&gt;</c>: {device pointer, int64 element count}, 16 bytes aligned to 8.</summary>
    View,
}

/// <summary>One leaf of a parameter's device image.</summary>
/// <param name="Path">Dotted field path from the parameter, e.g. <c>Input.Data</c>; empty for a scalar parameter itself.</param>
/// <param name="Offset">Byte offset inside the parameter's image.</param>
/// <param name="Kind">How the bytes are produced.</param>
/// <param name="Chain">The C# fields to follow from the parameter value to this leaf (empty for the parameter itself).</param>
public sealed record KernelParamField(string Path, int Offset, KernelParamFieldKind Kind, IReadOnlyList<FieldInfo> Chain);

/// <summary>
/// The device image of one kernel parameter type as ILGPU 1.5.3's PTX backend lays it out:
/// its size, alignment and leaves with their offsets.
/// </summary>
/// <remarks>
/// <para>
/// Why computed instead of hand-mirrored: the parameter structs gain fields as the kernels evolve, and a
/// hand-written mirror with <see cref="DeviceView"/> fields silently drifts. ILGPU passes an explicitly
/// grouped kernel's C# parameters as-is: a struct is its instance fields in declaration order with natural
/// alignment (sequential layout), nested structs recursively; an <c>ArrayView&lt;T&gt;</c> is
/// {pointer, int64 length}, 16 bytes aligned to 8; a <c>SpecializedValue&lt;T&gt;</c> keeps a slot the size
/// of <c>T</c>. The tests compare these sizes with the <c>.param</c> declarations ILGPU emits.
/// </para>
/// <para>Any other field type (bool, pointers, references, views of other dimensions) throws: guessing its
/// layout would produce a kernel that reads garbage.</para>
/// </remarks>
public sealed class KernelParamLayout
{
    private static readonly ConcurrentDictionary<Type, KernelParamLayout> Cache = new();

    private KernelParamLayout(Type type, int size, int alignment, IReadOnlyList<KernelParamField> fields)
    {
        Type = type;
        Size = size;
        Alignment = alignment;
        Fields = fields;
    }

    /// <summary>The C# parameter type.</summary>
    public Type Type { get; }

    /// <summary>Bytes of the device image (the <c>N</c> of <c>.param .align A .b8 [N]</c>).</summary>
    public int Size { get; }

    /// <summary>Alignment of the device image in bytes.</summary>
    public int Alignment { get; }

    /// <summary>Every leaf, in offset order.</summary>
    public IReadOnlyList<KernelParamField> Fields { get; }

    /// <summary>The layout of <paramref name="type"/> (cached).</summary>
    /// <exception cref="NotSupportedException">A field (or the type) has no known device layout; the message names the field path.</exception>
    public static KernelParamLayout Of(Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return Cache.GetOrAdd(type, t =>
        {
            var fields = new List<KernelParamField>();
            var (size, alignment) = Append(t, string.Empty, 0, Array.Empty<FieldInfo>(), fields, t.Name);
            return new KernelParamLayout(t, size, alignment, fields);
        });
    }

    private static (int Size, int Alignment) Append(
        Type type, string path, int offset, FieldInfo[] chain, List<KernelParamField> fields, string where)
    {
        if (Scalar(type) is { } scalar)
        {
            fields.Add(new KernelParamField(path, offset, scalar.Kind, chain));
            return (scalar.Size, scalar.Size);
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ArrayView<>))
        {
            fields.Add(new KernelParamField(path, offset, KernelParamFieldKind.View, chain));
            return (16, 8);
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(SpecializedValue<>))
        {
            // The specialized kernel ignores the slot's value; the slot keeps T's size.
            var inner = Scalar(type.GetGenericArguments()[0])
                ?? throw new NotSupportedException($"{where}: SpecializedValue<{type.GetGenericArguments()[0].Name}> has no known device layout.");
            fields.Add(new KernelParamField(path, offset, inner.Kind, chain));
            return (inner.Size, inner.Size);
        }

        if (!type.IsValueType || type.IsPrimitive || type.IsPointer || type.IsEnum)
        {
            throw new NotSupportedException(
                $"{where}: type {type.FullName} has no known kernel parameter layout (supported: int, uint, long, ulong, short, ushort, sbyte, byte, float, double, 4-byte enums, ArrayView<T>, SpecializedValue<int>, structs of these).");
        }

        int cursor = 0, structAlignment = 1;
        foreach (var member in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
                     .OrderBy(f => f.MetadataToken))
        {
            string memberPath = path.Length == 0 ? member.Name : path + "." + member.Name;
            var (probeSize, probeAlignment) = Measure(member.FieldType, where + "." + member.Name);
            cursor = RoundUp(cursor, probeAlignment);
            Append(member.FieldType, memberPath, offset + cursor, [.. chain, member], fields, where + "." + member.Name);
            cursor += probeSize;
            structAlignment = Math.Max(structAlignment, probeAlignment);
        }

        return (RoundUp(Math.Max(cursor, 1), structAlignment), structAlignment);
    }

    private static (int Size, int Alignment) Measure(Type type, string where)
    {
        var layout = Of(type, where);
        return (layout.Size, layout.Alignment);
    }

    private static KernelParamLayout Of(Type type, string where)
    {
        if (Cache.TryGetValue(type, out var cached))
        {
            return cached;
        }

        var fields = new List<KernelParamField>();
        var (size, alignment) = Append(type, string.Empty, 0, Array.Empty<FieldInfo>(), fields, where);
        return Cache.GetOrAdd(type, new KernelParamLayout(type, size, alignment, fields));
    }

    private static (KernelParamFieldKind Kind, int Size)? Scalar(Type type)
    {
        if (type.IsEnum)
        {
            type = Enum.GetUnderlyingType(type);
            if (type != typeof(int) && type != typeof(uint))
            {
                return null;
            }
        }

        return Type.GetTypeCode(type) switch
        {
            TypeCode.Int32 or TypeCode.UInt32 => (KernelParamFieldKind.Int32, 4),
            TypeCode.Int64 or TypeCode.UInt64 => (KernelParamFieldKind.Int64, 8),
            TypeCode.Single => (KernelParamFieldKind.Float32, 4),
            TypeCode.Double => (KernelParamFieldKind.Float64, 8),
            TypeCode.Int16 or TypeCode.UInt16 => (KernelParamFieldKind.Int16, 2),
            TypeCode.SByte or TypeCode.Byte => (KernelParamFieldKind.Int8, 1),
            _ => null,
        };
    }

    private static int RoundUp(int value, int alignment) => (value + alignment - 1) / alignment * alignment;
}
