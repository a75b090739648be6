using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Cli;

/// <summary>
/// Minimal .safetensors reader/writer for CPU tensors: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets}}, then the raw little-endian data. Enough to exchange q/k/v and
/// outputs with Python (F16, BF16, F32).
/// </summary>
public static unsafe class SafeTensorsFile
{
    /// <summary>Reads every tensor of <paramref name="path"/> onto the CPU.</summary>
    /// <exception cref="InvalidDataException">The header is malformed or uses an unsupported dtype.</exception>
    public static Dictionary<string, Tensor> Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8)
            throw new InvalidDataException($"{path} is too short for a safetensors file.");
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        if (headerLength <= 0 || 8 + headerLength > bytes.Length)
            throw new InvalidDataException($"{path}: header length {headerLength} is out of range.");
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength))!.AsObject();
        long dataStart = 8 + headerLength;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__" || node is null)
                continue;
            var dtype = ToScalarType((string)node["dtype"]!, path, name);
            long[] shape = node["shape"]!.AsArray().Select(s => (long)s!).ToArray();
            var offsets = node["data_offsets"]!.AsArray().Select(s => (long)s!).ToArray();
            var tensor = torch.empty(shape, dtype);
            long size = tensor.numel() * tensor.element_size();
            if (offsets[1] - offsets[0] != size || dataStart + offsets[1] > bytes.Length)
                throw new InvalidDataException($"{path}: tensor '{name}' has data_offsets [{offsets[0]}, {offsets[1]}] for {size} bytes.");
            bytes.AsSpan((int)(dataStart + offsets[0]), (int)size).CopyTo(new Span<byte>((void*)TorchInterop.DataPointer(tensor), (int)size));
            result[name] = tensor;
        }

        return result;
    }

    /// <summary>Writes <paramref name="tensors"/> (moved to the CPU, made contiguous) to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var header = new JsonObject();
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            using var cpu = tensor.to(DeviceType.CPU).contiguous();
            var blob = new byte[cpu.numel() * cpu.element_size()];
            new Span<byte>((void*)TorchInterop.DataPointer(cpu), blob.Length).CopyTo(blob);
            header[name] = new JsonObject
            {
                ["dtype"] = ToName(cpu.dtype),
                ["shape"] = new JsonArray(cpu.shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + blob.Length),
            };
            offset += blob.Length;
            blobs.Add(blob);
        }

        var json = Encoding.UTF8.GetBytes(header.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, json.Length);
        stream.Write(length);
        stream.Write(json);
        foreach (var blob in blobs)
            stream.Write(blob);
    }

    private static ScalarType ToScalarType(string dtype, string path, string name) => dtype switch
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
