using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Weights;

/// <summary>An open .safetensors file: its header parsed up front, tensors read on demand.</summary>
public sealed unsafe class SafeTensorsReader : IDisposable
{
    private readonly FileStream _stream;
    private readonly long _dataStart;

    /// <summary>Opens <paramref name="path"/> and parses its header.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The header is malformed, an entry's byte range is inconsistent with its shape, or a dtype is unsupported.</exception>
    public SafeTensorsReader(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        Path = path;
        _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        try
        {
            (Entries, _dataStart) = ParseHeader();
        }
        catch
        {
            _stream.Dispose();
            throw;
        }
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Every tensor entry by name (the optional <c>__metadata__</c> block is skipped).</summary>
    public IReadOnlyDictionary<string, SafeTensorEntry> Entries { get; }

    /// <summary>Reads tensor <paramref name="name"/> into a new CPU tensor of its stored dtype.</summary>
    /// <exception cref="KeyNotFoundException">No such tensor in this file.</exception>
    public Tensor Read(string name)
    {
        if (!Entries.TryGetValue(name, out var entry))
            throw new KeyNotFoundException($"{Path} has no tensor '{name}'.");
        var tensor = torch.empty(entry.Shape, entry.DType);
        try
        {
            if (entry.ByteLength > 0)
            {
                byte* data = (byte*)TorchInterop.DataPointer(tensor);
                _stream.Seek(_dataStart + entry.Begin, SeekOrigin.Begin);
                for (long done = 0; done < entry.ByteLength;)
                {
                    int chunk = (int)Math.Min(entry.ByteLength - done, 1 << 30);
                    int read = _stream.Read(new Span<byte>(data + done, chunk));
                    if (read == 0)
                        throw new InvalidDataException($"{Path}: tensor '{name}' ends past the end of the file.");
                    done += read;
                }
            }

            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _stream.Dispose();

    private (Dictionary<string, SafeTensorEntry>, long) ParseHeader()
    {
        Span<byte> prefix = stackalloc byte[8];
        if (_stream.Length < 8 || _stream.Read(prefix) != 8)
            throw new InvalidDataException($"{Path} is too short for a safetensors file.");
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(prefix);
        // The format caps the header at 100 MB; anything larger (or past the file) is not a safetensors file.
        if (headerLength <= 0 || headerLength > 100_000_000 || 8 + headerLength > _stream.Length)
            throw new InvalidDataException($"{Path}: header length {headerLength} is out of range.");
        var json = new byte[headerLength];
        _stream.ReadExactly(json);
        long dataStart = 8 + headerLength, dataLength = _stream.Length - dataStart;
        JsonObject header;
        try
        {
            header = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException($"{Path}: the header is not a JSON object.");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{Path}: the header is not a JSON object: {e.Message}", e);
        }

        var entries = new Dictionary<string, SafeTensorEntry>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__" || node is null)
                continue;
            try
            {
                var dtype = SafeTensorsFile.ToScalarType(node["dtype"]?.GetValue<string>() ?? "(none)", Path, name);
                long[] shape = Longs(node["shape"]);
                long[] offsets = Longs(node["data_offsets"]);
                long size = shape.Aggregate(1L, (a, s) => a * s) * (dtype == ScalarType.Float32 ? 4 : 2);
                if (shape.Any(s => s < 0) || offsets.Length != 2 || offsets[0] < 0 || offsets[1] - offsets[0] != size || offsets[1] > dataLength)
                    throw new InvalidDataException($"{Path}: tensor '{name}' of shape [{string.Join(", ", shape)}] has data_offsets [{string.Join(", ", offsets)}] ({dataLength} data bytes in the file).");
                entries[name] = new SafeTensorEntry(name, dtype, shape, offsets[0], offsets[1]);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{Path}: the header entry of '{name}' is malformed: {e.Message}", e);
            }
        }

        return (entries, dataStart);
    }

    private static long[] Longs(JsonNode? node) =>
        node is JsonArray array ? array.Select(s => s?.GetValue<long>() ?? throw new FormatException("null in an integer list")).ToArray()
            : throw new FormatException("an integer list is missing");
}
