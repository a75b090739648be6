using SageAttn.Models;

namespace SageAttn.Tests.Models;

/// <summary>config.json parsing for each family, the presets, and bad configs.</summary>
public sealed class ModelConfigTests
{
    // The public config.json files of Qwen/Qwen2.5-0.5B, Qwen/Qwen3-8B and baidu/ERNIE-4.5-0.3B-PT (as recalled;
    // fields this project ignores left in, as a real file has them).
    private const string Qwen25Json = """
        {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
         "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
         "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
         "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
         "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
         "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}
        """;

    private const string Qwen3Json = """
        {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
         "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
         "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
         "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
         "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": false,
         "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
         "vocab_size": 151936}
        """;

    private const string ErnieJson = """
        {"architectures": ["Ernie4_5ForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
         "hidden_size": 1024, "intermediate_size": 3072, "max_position_embeddings": 131072, "model_type": "ernie4_5",
         "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 128, "num_hidden_layers": 18, "pad_token_id": 0,
         "rms_norm_eps": 1e-05, "use_cache": false, "vocab_size": 103424, "rope_theta": 500000, "use_bias": false,
         "tie_word_embeddings": true, "torch_dtype": "bfloat16"}
        """;

    [Fact]
    public void ParsesQwen25WithDerivedHeadDimAndQkvBias()
    {
        var config = ModelConfig.FromJson(Qwen25Json);

        Assert.Equal(ModelFamily.Qwen2, config.Family);
        Assert.Equal(64, config.HeadDim); // 896 / 14: Qwen2 configs have no head_dim field
        Assert.Equal((14 + 2 * 2) * 64, config.QkvSize);
        Assert.True(config.AttentionBias);
        Assert.False(config.QkNorm);
        Assert.False(config.InterleavedRope);
        Assert.True(config.TieWordEmbeddings);
        Assert.Equal(1e6, config.RopeTheta);
        Assert.Equal(ModelPresets.Qwen25_0_5B, config);
    }

    [Fact]
    public void ParsesQwen3WithQkNormAndUntiedHead()
    {
        var config = ModelConfig.FromJson(Qwen3Json);

        Assert.Equal(ModelFamily.Qwen3, config.Family);
        Assert.True(config.QkNorm);
        Assert.False(config.AttentionBias);
        Assert.False(config.TieWordEmbeddings);
        Assert.Equal((32, 8, 128, 36), (config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.NumHiddenLayers));
        Assert.Equal(ModelPresets.Qwen3_8B, config);
    }

    [Fact]
    public void ParsesErnieWithHeadDimUnlikeHiddenOverHeadsAndInterleavedRope()
    {
        var config = ModelConfig.FromJson(ErnieJson);

        Assert.Equal(ModelFamily.Ernie45, config.Family);
        Assert.Equal(128, config.HeadDim);
        Assert.NotEqual(config.HiddenSize / config.NumAttentionHeads, config.HeadDim);
        Assert.True(config.InterleavedRope);
        Assert.False(config.AttentionBias);
        Assert.Equal(1e-5, config.RmsNormEps);
        Assert.Equal(ModelPresets.Ernie45_0_3B, config);
    }

    [Theory]
    [InlineData("qwen2", false, 10000.0)]
    [InlineData("qwen3", false, 10000.0)]
    [InlineData("ernie4_5", true, 500000.0)]
    public void MissingOptionalFieldsTakeTheTransformersDefaultsOfTheFamily(string modelType, bool tied, double theta)
    {
        var config = ModelConfig.FromJson($$"""
            {"model_type": "{{modelType}}", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
             "num_attention_heads": 4, "vocab_size": 100}
            """);

        Assert.Equal(4, config.NumKeyValueHeads); // no GQA unless num_key_value_heads says so
        Assert.Equal(16, config.HeadDim);
        Assert.Equal(tied, config.TieWordEmbeddings);
        Assert.Equal(theta, config.RopeTheta);
    }

    [Theory]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("[1, 2]", "must be a JSON object")]
    [InlineData("""{"model_type": "qwen2", "hidden_size": 64}""", "num_attention_heads")]
    [InlineData("""{"model_type": "qwen3", "hidden_size": "big", "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4}""", "hidden_size")]
    [InlineData("""{"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 14, "num_key_value_heads": 4, "vocab_size": 4}""", "num_key_value_heads")]
    [InlineData("""{"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 0, "num_attention_heads": 4, "vocab_size": 4}""", "NumHiddenLayers")]
    [InlineData("""{"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "head_dim": 15, "vocab_size": 4}""", "head_dim 15")]
    public void MalformedConfigThrowsArgumentExceptionForJson(string json, string expectedInMessage)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => ModelConfig.FromJson(json));
        Assert.Equal("json", e.ParamName);
        Assert.Contains(expectedInMessage, e.Message);
    }

    [Theory]
    [InlineData("""{"model_type": "llama"}""", "llama")]
    [InlineData("""{"model_type": "qwen2", "rope_scaling": {"type": "yarn", "factor": 4.0}}""", "rope_scaling")]
    [InlineData("""{"model_type": "qwen2", "use_sliding_window": true}""", "sliding")]
    [InlineData("""{"model_type": "ernie4_5", "moe_num_experts": 64}""", "mixture-of-experts")]
    [InlineData("""{"model_type": "qwen3", "hidden_act": "gelu"}""", "gelu")]
    public void UnsupportedFeaturesThrowNotSupported(string json, string expectedInMessage)
    {
        var e = Assert.Throws<NotSupportedException>(() => ModelConfig.FromJson(json));
        Assert.Contains(expectedInMessage, e.Message);
    }

    [Fact]
    public void FromFileReadsAFolderAndNamesAMissingFile()
    {
        string dir = ModelTestKit.TempDirectory();
        Assert.Throws<FileNotFoundException>(() => ModelConfig.FromFile(dir));
        File.WriteAllText(Path.Combine(dir, "config.json"), ErnieJson);

        Assert.Equal(ModelPresets.Ernie45_0_3B, ModelConfig.FromFile(dir));
    }

    [Fact]
    public void EveryPresetIsValidAndSurvivesAConfigJsonRoundTrip()
    {
        foreach (var name in ModelPresets.Names)
        {
            var preset = ModelPresets.Get(name);
            preset.Validate();
            Assert.Equal(preset, ModelConfig.FromJson(preset.ToJson(TorchSharp.torch.ScalarType.BFloat16)));
        }
    }

    [Fact]
    public void PresetsHaveTheShapesOfTheTargetModels()
    {
        // shared/notes/backend-design.md: layers, hidden, heads, kv heads, head_dim, rope theta.
        Assert.Equal((18, 1024, 16, 2, 128, 5e5), Shape(ModelPresets.Get("ernie-4.5-0.3b")));
        Assert.Equal((24, 896, 14, 2, 64, 1e6), Shape(ModelPresets.Get("qwen2.5-0.5b")));
        Assert.Equal((28, 3584, 28, 4, 128, 1e6), Shape(ModelPresets.Get("qwen2.5-7b")));
        Assert.Equal((28, 1024, 16, 8, 128, 1e6), Shape(ModelPresets.Get("qwen3-0.6b")));
        Assert.Equal((36, 4096, 32, 8, 128, 1e6), Shape(ModelPresets.Get("QWEN3-8B")));

        static (int, int, int, int, int, double) Shape(ModelConfig c) =>
            (c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.RopeTheta);
    }

    [Fact]
    public void UnknownPresetAndBadLayerCountThrow()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelPresets.Get("llama-3-8b"));
        Assert.Equal("name", e.ParamName);
        Assert.Contains("qwen3-8b", e.Message);
        Assert.Equal(4, ModelPresets.Qwen3_8B.WithLayers(4).NumHiddenLayers);
        Assert.Equal("layers", Assert.Throws<ArgumentOutOfRangeException>(() => ModelPresets.Qwen3_8B.WithLayers(0)).ParamName);
        Assert.Equal("layers", Assert.Throws<ArgumentOutOfRangeException>(() => ModelPresets.Qwen3_8B.WithLayers(37)).ParamName);
    }
}
