using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Linq.Expressions;
using System.Reflection;
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
/// <para>The scalar leaves are written by one delegate per parameter type, compiled from the layout on first use: reading
/// them through reflection (a boxed read per field of every nested struct) cost ~25 µs of host time per launch.</para>
/// </remarks>
public static class KernelParamWriter
{
    private static readonly ConcurrentDictionary<Type, Action<object, byte[]>> ScalarWriters = new();

    /// <summary>The device image of <paramref name="value"/>.</summary>
    /// <param name="value">A boxed parameter value (struct, scalar or SpecializedValue).</param>
    /// <param name="views">Device views by dotted field path (e.g. <c>Input.Data</c>); for a view parameter itself, the key is the empty string.</param>
    /// <exception cref="ArgumentException">A view leaf has no entry, or an entry names no view leaf.</exception>
    /// <exception cref="NotSupportedException">The type holds a field with no known device layout.</exception>
    public static byte[] Write(object value, IReadOnlyDictionary<string, DeviceView>? views = null)
    {
        ArgumentNullException.ThrowIfNull(value);
        return WriteImage(KernelParamLayout.Of(value.GetType()), value, views);
    }

    private static byte[] WriteImage(KernelParamLayout layout, object value, IReadOnlyDictionary<string, DeviceView>? views)
    {
        views ??= new Dictionary<string, DeviceView>();
        var bytes = new byte[layout.Size];
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var field in layout.Fields)
        {
            if (field.Kind != KernelParamFieldKind.View)
            {
                continue;
            }

            if (!views.TryGetValue(field.Path, out var view))
            {
                throw new ArgumentException(
                    $"{layout.Type.Name}: no device view given for the ArrayView field '{field.Path}'.", nameof(views));
            }

            used.Add(field.Path);
            var span = bytes.AsSpan(field.Offset);
            BinaryPrimitives.WriteInt64LittleEndian(span, view.Pointer.ToInt64());
            BinaryPrimitives.WriteInt64LittleEndian(span[8..], view.Length);
        }

        ScalarWriters.GetOrAdd(layout.Type, _ => CompileScalarWriter(layout))(value, bytes);

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
        var layout = KernelParamLayout.Of(value.GetType());
        return args.AddBytes(WriteImage(layout, value, views), layout.Alignment);
    }

    /// <summary>
    /// (value, bytes) => { var v = (T)value; Put(bytes, offset, v.A.B); ... } for every scalar leaf of the layout: the value
    /// unboxed once, each leaf read by its field chain, a <see cref="SpecializedValue{T}"/> by its value, an enum as its
    /// underlying integer, written little-endian with the bits of its size (signed and unsigned alike).
    /// </summary>
    private static Action<object, byte[]> CompileScalarWriter(KernelParamLayout layout)
    {
        var value = Expression.Parameter(typeof(object), "value");
        var bytes = Expression.Parameter(typeof(byte[]), "bytes");
        var typed = Expression.Variable(layout.Type, "typed");
        var body = new List<Expression> { Expression.Assign(typed, Expression.Unbox(value, layout.Type)) };
        foreach (var field in layout.Fields)
        {
            if (field.Kind == KernelParamFieldKind.View)
            {
                continue;
            }

            Expression leaf = typed;
            foreach (var member in field.Chain)
            {
                leaf = Expression.Field(leaf, member);
            }

            if (leaf.Type.IsGenericType && leaf.Type.GetGenericTypeDefinition() == typeof(SpecializedValue<>))
            {
                leaf = Expression.Property(leaf, nameof(SpecializedValue<int>.Value));
            }

            if (leaf.Type.IsEnum)
            {
                leaf = Expression.Convert(leaf, Enum.GetUnderlyingType(leaf.Type));
            }

            var (put, bits) = field.Kind switch
            {
                KernelParamFieldKind.Int32 => (nameof(PutUInt32), typeof(uint)),
                KernelParamFieldKind.Int64 => (nameof(PutUInt64), typeof(ulong)),
                KernelParamFieldKind.Float32 => (nameof(PutSingle), typeof(float)),
                KernelParamFieldKind.Float64 => (nameof(PutDouble), typeof(double)),
                KernelParamFieldKind.Int16 => (nameof(PutUInt16), typeof(ushort)),
                KernelParamFieldKind.Int8 => (nameof(PutByte), typeof(byte)),
                _ => throw new NotSupportedException($"Kernel parameter leaf kind {field.Kind} cannot be written as a scalar."),
            };
            var method = typeof(KernelParamWriter).GetMethod(put, BindingFlags.NonPublic | BindingFlags.Static)!;
            // Expression.Convert is unchecked: int → uint keeps the bits, as the device reads them.
            body.Add(Expression.Call(method, bytes, Expression.Constant(field.Offset), leaf.Type == bits ? leaf : Expression.Convert(leaf, bits)));
        }

        return Expression.Lambda<Action<object, byte[]>>(Expression.Block([typed], body), value, bytes).Compile();
    }

    private static void PutUInt32(byte[] bytes, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(offset), value);

    private static void PutUInt64(byte[] bytes, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offset), value);

    private static void PutSingle(byte[] bytes, int offset, float value) => BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), value);

    private static void PutDouble(byte[] bytes, int offset, double value) => BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(offset), value);

    private static void PutUInt16(byte[] bytes, int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(offset), value);

    private static void PutByte(byte[] bytes, int offset, byte value) => bytes[offset] = value;
}
