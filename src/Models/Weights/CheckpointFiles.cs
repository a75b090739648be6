using System.Text.Json;

namespace SageAttn.Models.Weights;

/// <summary>
/// Which .safetensors file of a Hugging Face model folder holds each tensor: the <c>weight_map</c> of
/// <c>model.safetensors.index.json</c> when present (sharded checkpoints), else the headers of every
/// <c>*.safetensors</c> file in the folder (a single <c>model.safetensors</c>, usually). Keeps one open reader per file.
/// </summary>
public sealed class CheckpointFiles : IDisposable
{
    /// <summary>The index file name of sharded Hugging Face checkpoints.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, string> _fileOf = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SafeTensorsReader> _readers = new(StringComparer.Ordinal);

    /// <summary>Indexes the checkpoint in <paramref name="directory"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">The folder has no .safetensors file, or the index names a missing shard.</exception>
    /// <exception cref="InvalidDataException">The index or a header is malformed, or two files hold the same tensor.</exception>
    public CheckpointFiles(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"no checkpoint folder {directory}.");
        Directory = directory;
        try
        {
            string index = Path.Combine(directory, IndexFileName);
            if (File.Exists(index))
                ReadIndex(index);
            else
                ScanFolder();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>Names of every tensor in the checkpoint.</summary>
    public IReadOnlyCollection<string> Names => _fileOf.Keys;

    /// <summary>True when the checkpoint has tensor <paramref name="name"/>.</summary>
    public bool Contains(string name) => _fileOf.ContainsKey(name);

    /// <summary>The header entry of tensor <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such tensor.</exception>
    public SafeTensorEntry Entry(string name) => ReaderOf(name).Entries.TryGetValue(name, out var entry)
        ? entry
        : throw new InvalidDataException($"{IndexFileName} maps '{name}' to {_fileOf[name]}, which does not hold it.");

    /// <summary>Reads tensor <paramref name="name"/> onto the CPU in its stored dtype.</summary>
    /// <exception cref="KeyNotFoundException">No such tensor.</exception>
    public TorchSharp.torch.Tensor Read(string name)
    {
        _ = Entry(name);
        return ReaderOf(name).Read(name);
    }

    /// <summary>Closes every open file.</summary>
    public void Dispose()
    {
        foreach (var reader in _readers.Values)
            reader.Dispose();
        _readers.Clear();
    }

    private SafeTensorsReader ReaderOf(string name)
    {
        if (!_fileOf.TryGetValue(name, out var file))
            throw new KeyNotFoundException($"the checkpoint in {Directory} has no tensor '{name}'.");
        if (!_readers.TryGetValue(file, out var reader))
        {
            if (!File.Exists(file))
                throw new FileNotFoundException($"{IndexFileName} names shard {Path.GetFileName(file)}, which is not in {Directory}.", file);
            _readers[file] = reader = new SafeTensorsReader(file);
        }

        return reader;
    }

    private void ReadIndex(string index)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(index));
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{index} has no weight_map object.");
            foreach (var entry in map.EnumerateObject())
            {
                string shard = entry.Value.GetString() ?? throw new InvalidDataException($"{index}: '{entry.Name}' maps to null.");
                if (Path.GetFileName(shard) != shard)
                    throw new InvalidDataException($"{index}: shard '{shard}' of '{entry.Name}' is not a file name in the folder.");
                _fileOf[entry.Name] = Path.Combine(Directory, shard);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{index} is not a valid index: {e.Message}", e);
        }
    }

    private void ScanFolder()
    {
        var files = System.IO.Directory.GetFiles(Directory, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
            throw new FileNotFoundException($"{Directory} has neither {IndexFileName} nor any .safetensors file.");
        foreach (var file in files)
        {
            var reader = new SafeTensorsReader(file);
            _readers[file] = reader;
            foreach (var name in reader.Entries.Keys)
            {
                if (_fileOf.TryGetValue(name, out var other))
                    throw new InvalidDataException($"tensor '{name}' is in both {Path.GetFileName(other)} and {Path.GetFileName(file)}.");
                _fileOf[name] = file;
            }
        }
    }
}
