using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Weights;

/// <summary>
/// .safetensors reading and writing for CPU tensors: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets}}, then the raw little-endian data. Tensors are read one at a time straight
/// into torch memory (no whole-file buffer, no 2 GB limit), so a sharded 16 GB checkpoint loads tensor by tensor.
/// Supported dtypes: F16, BF16, F32.
/// </summary>
public static unsafe class SafeTensorsFile
{
    /// <summary>Reads every tensor of <paramref name="path"/> onto the CPU.</summary>
    /// <exception cref="InvalidDataException">The header is malformed or uses an unsupported dtype.</exception>
    public static Dictionary<string, Tensor> Read(string path)
    {
        using var reader = new SafeTensorsReader(path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var name in reader.Entries.Keys)
            result[name] = reader.Read(name);
        return result;
    }

    /// <summary>Writes <paramref name="tensors"/> (each moved to the CPU and made contiguous in turn) to <paramref name="path"/>.</summary>
    /// <exception cref="NotSupportedException">A tensor's dtype is not Float16, BFloat16 or Float32.</exception>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            long size = tensor.numel() * tensor.element_size();
            header[name] = new JsonObject
            {
                ["dtype"] = ToName(tensor.dtype),
                ["shape"] = new JsonArray(tensor.shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }

        var json = Encoding.UTF8.GetBytes(header.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, json.Length);
        stream.Write(length);
        stream.Write(json);
        foreach (var tensor in tensors.Values)
        {
            using var cpu = tensor.to(DeviceType.CPU).contiguous();
            long size = cpu.numel() * cpu.element_size();
            byte* data = (byte*)TorchInterop.DataPointer(cpu);
            for (long done = 0; done < size;)
            {
                int chunk = (int)Math.Min(size - done, 1 << 30);
                stream.Write(new ReadOnlySpan<byte>(data + done, chunk));
                done += chunk;
            }
        }
    }

    internal static ScalarType ToScalarType(string dtype, string path, string name) => dtype switch
    {
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F32" => ScalarType.Float32,
        _ => throw new InvalidDataException($"{path}: tensor '{name}' has dtype {dtype}; supported: F16, BF16, F32."),
    };

    private static string ToName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float32 => "F32",
        _ => throw new NotSupportedException($"dtype {dtype} cannot be written (supported: Float16, BFloat16, Float32)."),
    };
}
