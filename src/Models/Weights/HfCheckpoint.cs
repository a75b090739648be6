using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Models.Weights;

/// <summary>
/// Loads a <see cref="DecoderModel"/> from a Hugging Face model folder (config.json and .safetensors, single or
/// sharded) and saves one in that format.
/// </summary>
public static class HfCheckpoint
{
    /// <summary>
    /// Builds the model described by <paramref name="directory"/>/config.json on <paramref name="device"/> in
    /// <paramref name="dtype"/> and loads its weights (see <see cref="Load"/>), optionally keeping only the first
    /// <paramref name="layers"/> layers.
    /// </summary>
    public static DecoderModel Open(string directory, ScalarType dtype, Device device, int? layers = null)
    {
        var config = ModelConfig.FromFile(directory);
        if (layers is { } n)
            config = config.WithLayers(n);
        var model = new DecoderModel(config, dtype, device);
        try
        {
            Load(model, directory);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies every parameter of <paramref name="model"/> from the checkpoint in <paramref name="directory"/>,
    /// converting to the model's dtype and device tensor by tensor (one tensor on the host at a time). q/k/v
    /// projections are stacked into the fused qkv; a tied model ignores a stored lm_head; layers past the model's
    /// are skipped.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing or has the wrong shape (the message names it and both shapes).</exception>
    /// <exception cref="FileNotFoundException">The folder has no safetensors files, or a shard is missing.</exception>
    public static void Load(DecoderModel model, string directory)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var files = new CheckpointFiles(directory);
        using var noGrad = torch.no_grad();
        var missing = new List<string>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            using var scope = torch.NewDisposeScope();
            var sources = SourcesOf(name, files);
            if (sources.FirstOrDefault(s => !files.Contains(s)) is { } absent)
            {
                missing.Add(absent);
                continue;
            }

            var parts = sources.Select(files.Read).ToArray();
            CheckShapes(name, parameter, sources, parts, model.Config);
            var data = parts.Length == 1 ? parts[0] : torch.cat(parts, 0);
            parameter.copy_(data);
        }

        if (missing.Count > 0)
            throw new InvalidDataException(
                $"the checkpoint in {directory} lacks {missing.Count} tensor(s) the {model.Config.ModelType} model needs, e.g. " +
                string.Join(", ", missing.Take(5)) + (model.Config.TieWordEmbeddings ? "." : " (is tie_word_embeddings right?)."));
    }

    /// <summary>
    /// Writes <paramref name="model"/> as a Hugging Face folder: config.json and the weights under HF names
    /// (fused qkv split back into q/k/v) in <paramref name="shards"/> files — model.safetensors when 1, else
    /// model-0000i-of-0000n.safetensors plus model.safetensors.index.json.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shards"/> is below 1 or above the number of tensors.</exception>
    public static void Save(DecoderModel model, string directory, int shards = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(directory);
        using var scope = torch.NewDisposeScope();
        var tensors = new List<(string Name, Tensor Tensor)>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (HfWeightNames.IsFusedQkv(name))
            {
                var parts = parameter.split(HfWeightNames.QkvRows(model.Config), 0);
                tensors.AddRange(HfWeightNames.SplitQkv(name).Zip(parts));
            }
            else
            {
                tensors.Add((HfWeightNames.Direct(name), parameter));
            }
        }

        if (shards < 1 || shards > tensors.Count)
            throw new ArgumentOutOfRangeException(nameof(shards), shards, $"must be in 1..{tensors.Count} (the number of tensors).");
        System.IO.Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), model.Config.ToJson(model.DType));
        if (shards == 1)
        {
            SafeTensorsFile.Write(Path.Combine(directory, "model.safetensors"), tensors.ToDictionary(t => t.Name, t => t.Tensor));
            return;
        }

        // Contiguous runs of tensors in state-dict order, about equal in bytes, like transformers' save_pretrained.
        long total = tensors.Sum(t => t.Tensor.numel() * t.Tensor.element_size()), done = 0;
        var weightMap = new JsonObject();
        int next = 0;
        for (int shard = 0; shard < shards; shard++)
        {
            string file = string.Create(CultureInfo.InvariantCulture, $"model-{shard + 1:D5}-of-{shards:D5}.safetensors");
            var content = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            long target = total * (shard + 1) / shards;
            // Each shard takes at least one tensor and leaves at least one for each later shard.
            while (next < tensors.Count - (shards - shard - 1) && (content.Count == 0 || done < target || shard == shards - 1))
            {
                var (name, tensor) = tensors[next++];
                content[name] = tensor;
                weightMap[name] = file;
                done += tensor.numel() * tensor.element_size();
            }

            SafeTensorsFile.Write(Path.Combine(directory, file), content);
        }

        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        File.WriteAllText(Path.Combine(directory, CheckpointFiles.IndexFileName), index.ToJsonString());
    }

    /// <summary>The checkpoint tensors a state-dict entry is made of (several for a fused qkv stored unfused).</summary>
    private static IReadOnlyList<string> SourcesOf(string name, CheckpointFiles files)
    {
        string direct = HfWeightNames.Direct(name);
        return HfWeightNames.IsFusedQkv(name) && !files.Contains(direct) ? HfWeightNames.SplitQkv(name) : [direct];
    }

    private static void CheckShapes(string name, Tensor parameter, IReadOnlyList<string> sources, Tensor[] parts, ModelConfig config)
    {
        long[] expectedRows = parts.Length == 1 ? [parameter.shape[0]] : HfWeightNames.QkvRows(config);
        for (int i = 0; i < parts.Length; i++)
        {
            long[] expected = [expectedRows[i], .. parameter.shape.Skip(1)];
            if (!parts[i].shape.SequenceEqual(expected))
                throw new InvalidDataException(
                    $"checkpoint tensor '{sources[i]}' has shape [{string.Join(", ", parts[i].shape)}] but {config.ModelType} parameter '{name}' " +
                    $"needs [{string.Join(", ", expected)}] (check config.json against the weights).");
        }
    }
}
