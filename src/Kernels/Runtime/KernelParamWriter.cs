using System.Buffers.Binary;
using ILGPU;
using ILGPU.Runtime;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Serializes a kernel parameter built on the host (with <c>default</c> views) into the bytes the
/// PTX entry expects, filling each <c>ArrayView&lt;T&gt;</c> from a map of field paths to
/// <see cref="DeviceView"/>s.
/// </summary>
/// <remarks>
/// Why: <c>ArrayView&lt;T&gt;</c> holds a managed buffer reference and cannot describe a raw device
/// pointer from libtorch; the driver path still wants to build the real parameter structs
/// (<c>AttentionParams</c>, <c>QuantizeInt8Params</c>, ...) so new fields are never forgotten. Every view
/// leaf must be named in the map and every map entry must name a view leaf, so a renamed field fails
/// loudly instead of launching with a null pointer. A <c>SpecializedValue&lt;int&gt;</c> slot is written
/// with its value (the specialized kernel ignores it).
/// </remarks>
public static class KernelParamWriter
{
    /// <summary>The device image of <paramref name="value"/>.</summary>
    /// <param name="value">A boxed parameter value (struct, scalar or SpecializedValue).</param>
    /// <param name="views">Device views by dotted field path (e.g. <c>Input.Data</c>); for a view parameter itself, the key is the empty string.</param>
    /// <exception cref="ArgumentException">A view leaf has no entry, or an entry names no view leaf.</exception>
    /// <exception cref="NotSupportedException">The type holds a field with no known device layout.</exception>
    public static byte[] Write(object value, IReadOnlyDictionary<string, DeviceView>? views = null)
    {
        ArgumentNullException.ThrowIfNull(value);
        views ??= new Dictionary<string, DeviceView>();
        var layout = KernelParamLayout.Of(value.GetType());
        var bytes = new byte[layout.Size];
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in layout.Fields)
        {
            var span = bytes.AsSpan(field.Offset);
            if (field.Kind == KernelParamFieldKind.View)
            {
                if (!views.TryGetValue(field.Path, out var view))
                {
                    throw new ArgumentException(
                        $"{layout.Type.Name}: no device view given for the ArrayView field '{field.Path}'.", nameof(views));
                }

                used.Add(field.Path);
                BinaryPrimitives.WriteInt64LittleEndian(span, view.Pointer.ToInt64());
                BinaryPrimitives.WriteInt64LittleEndian(span[8..], view.Length);
                continue;
            }

            object leaf = value;
            foreach (var member in field.Chain)
            {
                leaf = member.GetValue(leaf)!;
            }

            WriteScalar(span, field.Kind, Unwrap(leaf));
        }

        foreach (var key in views.Keys)
        {
            if (!used.Contains(key))
            {
                throw new ArgumentException(
                    $"{layout.Type.Name} has no ArrayView field '{key}' (views: {string.Join(", ", layout.Fields.Where(f => f.Kind == KernelParamFieldKind.View).Select(f => f.Path))}).",
                    nameof(views));
            }
        }

        return bytes;
    }

    /// <summary>Adds <paramref name="value"/> to <paramref name="args"/> as one parameter (see <see cref="Write"/>).</summary>
    public static KernelArgs AddParameter(this KernelArgs args, object value, IReadOnlyDictionary<string, DeviceView>? views = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(value);
        return args.AddBytes(Write(value, views), KernelParamLayout.Of(value.GetType()).Alignment);
    }

    private static object Unwrap(object leaf)
    {
        var type = leaf.GetType();
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(SpecializedValue<>))
        {
            return type.GetProperty(nameof(SpecializedValue<int>.Value))!.GetValue(leaf)!;
        }

        return type.IsEnum ? Convert.ChangeType(leaf, Enum.GetUnderlyingType(type), System.Globalization.CultureInfo.InvariantCulture) : leaf;
    }

    private static void WriteScalar(Span<byte> span, KernelParamFieldKind kind, object leaf)
    {
        switch (kind)
        {
            case KernelParamFieldKind.Int32:
                BinaryPrimitives.WriteUInt32LittleEndian(span, leaf is uint u ? u : unchecked((uint)(int)leaf));
                break;
            case KernelParamFieldKind.Int64:
                BinaryPrimitives.WriteUInt64LittleEndian(span, leaf is ulong ul ? ul : unchecked((ulong)(long)leaf));
                break;
            case KernelParamFieldKind.Float32:
                BinaryPrimitives.WriteSingleLittleEndian(span, (float)leaf);
                break;
            case KernelParamFieldKind.Float64:
                BinaryPrimitives.WriteDoubleLittleEndian(span, (double)leaf);
                break;
            case KernelParamFieldKind.Int16:
                BinaryPrimitives.WriteUInt16LittleEndian(span, leaf is ushort us ? us : unchecked((ushort)(short)leaf));
                break;
            case KernelParamFieldKind.Int8:
                span[0] = leaf is byte b ? b : unchecked((byte)(sbyte)leaf);
                break;
            default:
                throw new NotSupportedException($"Kernel parameter leaf kind {kind} cannot be written as a scalar.");
        }
    }
}
