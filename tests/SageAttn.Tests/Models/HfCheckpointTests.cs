using SageAttn.Models;
using SageAttn.Models.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Models;

/// <summary>Loading and saving Hugging Face folders: names, fusing, sharding, and the errors a bad folder gives.</summary>
public sealed class HfCheckpointTests
{
    [Theory]
    [InlineData(ModelFamily.Qwen2)]
    [InlineData(ModelFamily.Qwen3)]
    [InlineData(ModelFamily.Ernie45)]
    public void LoadStacksQkvRowsAndCopiesEveryTensorFromShards(ModelFamily family)
    {
        var config = ModelPresets.Tiny(family);
        var weights = ModelTestKit.HfWeights(config, seed: 40);
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 3, ScalarType.BFloat16);

        using var model = HfCheckpoint.Open(dir, ScalarType.BFloat16, torch.CPU);

        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var qkv = torch.cat([weights["model.layers.1.self_attn.q_proj.weight"], weights["model.layers.1.self_attn.k_proj.weight"],
            weights["model.layers.1.self_attn.v_proj.weight"]], 0).to(ScalarType.BFloat16);
        Assert.True(ModelTestKit.Identical(parameters["layers.1.self_attn.qkv_proj.weight"], qkv));
        using var down = weights["model.layers.0.mlp.down_proj.weight"].to(ScalarType.BFloat16);
        Assert.True(ModelTestKit.Identical(parameters["layers.0.mlp.down_proj.weight"], down));
        Assert.Equal(config.AttentionBias, parameters.ContainsKey("layers.0.self_attn.qkv_proj.bias"));
        Assert.Equal(config.QkNorm, parameters.ContainsKey("layers.0.self_attn.k_norm.weight"));
        if (config.QkNorm)
        {
            using var kNorm = weights["model.layers.1.self_attn.k_norm.weight"].to(ScalarType.BFloat16);
            Assert.True(ModelTestKit.Identical(parameters["layers.1.self_attn.k_norm.weight"], kNorm));
        }

        Assert.Equal(!config.TieWordEmbeddings, parameters.ContainsKey("lm_head.weight"));
    }

    [Fact]
    public void SaveWritesHfNamesAndLoadRestoresEveryParameter()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen2);
        using var model = new DecoderModel(config, ScalarType.BFloat16, torch.CPU);
        RandomWeights.Initialize(model, seed: 8);
        string dir = ModelTestKit.TempDirectory();

        HfCheckpoint.Save(model, dir, shards: 3);

        Assert.Equal(3, Directory.GetFiles(dir, "model-*-of-00003.safetensors").Length);
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        var saved = Directory.GetFiles(dir, "*.safetensors").SelectMany(f => SafeTensorsFile.Read(f)).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(ModelTestKit.HfWeights(config, seed: 0).Keys.Order(), saved.Keys.Order());
        using var loaded = HfCheckpoint.Open(dir, ScalarType.BFloat16, torch.CPU);
        Assert.Equal(config, loaded.Config);
        var restored = loaded.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in model.named_parameters())
            Assert.True(ModelTestKit.Identical(parameter, restored[name]), $"{name} changed in the round trip");
    }

    [Fact]
    public void LoadAcceptsAnAlreadyFusedQkvAndIgnoresExtraTensors()
    {
        var config = ModelPresets.Tiny(ModelFamily.Ernie45);
        var weights = ModelTestKit.HfWeights(config, seed: 41);
        string p = "model.layers.0.self_attn.";
        weights[p + "qkv_proj.weight"] = torch.cat([weights[p + "q_proj.weight"], weights[p + "k_proj.weight"], weights[p + "v_proj.weight"]], 0);
        foreach (var part in new[] { "q_proj", "k_proj", "v_proj" })
            weights.Remove(p + part + ".weight");
        weights["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(16);
        weights["lm_head.weight"] = torch.ones(config.VocabSize, config.HiddenSize); // stored though tied: ignored
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 1, ScalarType.Float32);

        using var model = HfCheckpoint.Open(dir, ScalarType.Float16, torch.CPU);

        using var expected = weights[p + "qkv_proj.weight"].to(ScalarType.Float16);
        Assert.True(ModelTestKit.Identical(model.named_parameters().Single(x => x.name == "layers.0.self_attn.qkv_proj.weight").parameter, expected));
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen3);
        var weights = ModelTestKit.HfWeights(config, seed: 42);
        weights.Remove("model.layers.1.self_attn.k_proj.weight");
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 2, ScalarType.Float32);

        var e = Assert.Throws<InvalidDataException>(() => HfCheckpoint.Open(dir, ScalarType.Float16, torch.CPU));
        Assert.Contains("model.layers.1.self_attn.k_proj.weight", e.Message);
    }

    [Fact]
    public void WrongShapeIsNamedWithBothShapes()
    {
        var config = ModelPresets.Tiny(ModelFamily.Qwen2);
        var weights = ModelTestKit.HfWeights(config with { IntermediateSize = 96 }, seed: 43);
        string dir = ModelTestKit.TempDirectory();
        ModelTestKit.WriteCheckpoint(dir, config, weights, shards: 1, ScalarType.Float32);

        var e = Assert.Throws<InvalidDataException>(() => HfCheckpoint.Open(dir, ScalarType.Float16, torch.CPU));
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e.Message);
        Assert.Contains("[96, 64]", e.Message);
        Assert.Contains("[128, 64]", e.Message);
    }

    [Fact]
    public void BadFoldersAndFilesGiveClearErrors()
    {
        Assert.Throws<DirectoryNotFoundException>(() => new CheckpointFiles("/no/such/folder"));
        string empty = ModelTestKit.TempDirectory();
        Assert.Throws<FileNotFoundException>(() => new CheckpointFiles(empty));

        string truncated = Path.Combine(ModelTestKit.TempDirectory(), "model.safetensors");
        File.WriteAllBytes(truncated, [200, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}']);
        Assert.Contains("header length 200", Assert.Throws<InvalidDataException>(() => new SafeTensorsReader(truncated)).Message);

        string lying = Path.Combine(ModelTestKit.TempDirectory(), "model.safetensors");
        var header = """{"x": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 60]}}"""u8.ToArray();
        File.WriteAllBytes(lying, [.. BitConverter.GetBytes((long)header.Length), .. header, .. new byte[64]]);
        Assert.Contains("data_offsets", Assert.Throws<InvalidDataException>(() => new SafeTensorsReader(lying)).Message);

        string shardless = ModelTestKit.TempDirectory();
        File.WriteAllText(Path.Combine(shardless, CheckpointFiles.IndexFileName), """{"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}}""");
        using var files = new CheckpointFiles(shardless);
        Assert.Throws<FileNotFoundException>(() => files.Read("model.norm.weight"));
    }
}
