using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SageAttn.Models;

/// <summary>
/// The shape of a dense decoder model, with Hugging Face <c>config.json</c> field names in the docs. Parse one with
/// <see cref="FromJson"/> / <see cref="FromFile"/>, or take a preset from <see cref="ModelPresets"/>.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Which block variant (bias, q/k norm, RoPE style) the model uses.</summary>
    public required ModelFamily Family { get; init; }

    /// <summary><c>hidden_size</c>: width of the residual stream.</summary>
    public required int HiddenSize { get; init; }

    /// <summary><c>intermediate_size</c>: width of the SwiGLU MLP.</summary>
    public required int IntermediateSize { get; init; }

    /// <summary><c>num_hidden_layers</c>.</summary>
    public required int NumHiddenLayers { get; init; }

    /// <summary><c>num_attention_heads</c> (H).</summary>
    public required int NumAttentionHeads { get; init; }

    /// <summary><c>num_key_value_heads</c> (Hkv); H must be a multiple of it (GQA).</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary>
    /// <c>head_dim</c> (D). Not always hidden_size / heads: ERNIE-4.5-0.3B and Qwen3-0.6B have H·D = 2048 with
    /// hidden 1024.
    /// </summary>
    public required int HeadDim { get; init; }

    /// <summary><c>vocab_size</c>.</summary>
    public required int VocabSize { get; init; }

    /// <summary><c>rms_norm_eps</c>.</summary>
    public double RmsNormEps { get; init; } = 1e-6;

    /// <summary><c>rope_theta</c>: base of the rotary frequencies.</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary><c>max_position_embeddings</c>: the longest sequence (prompt + generated) the rotary table covers.</summary>
    public int MaxPositionEmbeddings { get; init; } = 4096;

    /// <summary><c>tie_word_embeddings</c>: the LM head reuses the token embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>
    /// Bias on the q, k and v projections (Qwen2 always; <c>attention_bias</c> for Qwen3; ERNIE's <c>use_bias</c>
    /// must be false). The output projection never has one in the supported families.
    /// </summary>
    public bool AttentionBias { get; init; }

    /// <summary>
    /// Rotates pairs (2i, 2i+1) instead of halves (i, i + D/2). ERNIE-4.5 rotates pairs; Qwen rotates halves.
    /// Defaults to the family's style; tests flip it to show the choice reaches the attention backend.
    /// </summary>
    public bool InterleavedRope { get; init; }

    /// <summary>Per-head RMSNorm of q and k before RoPE (Qwen3).</summary>
    public bool QkNorm => Family == ModelFamily.Qwen3;

    /// <summary>The Hugging Face <c>model_type</c> of <see cref="Family"/>.</summary>
    public string ModelType => ModelTypeOf(Family);

    /// <summary>Width of the packed qkv projection: (H + 2·Hkv)·D.</summary>
    public int QkvSize => (NumAttentionHeads + 2 * NumKeyValueHeads) * HeadDim;

    /// <summary>The same model cut to its first <paramref name="layers"/> layers (for runs short on memory or time).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layers"/> is not in 1..<see cref="NumHiddenLayers"/>.</exception>
    public ModelConfig WithLayers(int layers)
    {
        if (layers < 1 || layers > NumHiddenLayers)
            throw new ArgumentOutOfRangeException(nameof(layers), layers, $"must be in 1..{NumHiddenLayers} (the model's num_hidden_layers).");
        return this with { NumHiddenLayers = layers };
    }

    /// <summary>Checks every size for consistency.</summary>
    /// <exception cref="ArgumentException">A field is out of range; ParamName is the property's name.</exception>
    public ModelConfig Validate()
    {
        Positive(HiddenSize, nameof(HiddenSize));
        Positive(IntermediateSize, nameof(IntermediateSize));
        Positive(NumHiddenLayers, nameof(NumHiddenLayers));
        Positive(NumAttentionHeads, nameof(NumAttentionHeads));
        Positive(NumKeyValueHeads, nameof(NumKeyValueHeads));
        Positive(HeadDim, nameof(HeadDim));
        Positive(VocabSize, nameof(VocabSize));
        Positive(MaxPositionEmbeddings, nameof(MaxPositionEmbeddings));
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new ArgumentException($"num_attention_heads {NumAttentionHeads} is not a multiple of num_key_value_heads {NumKeyValueHeads}.", nameof(NumKeyValueHeads));
        if (HeadDim % 2 != 0)
            throw new ArgumentException($"head_dim {HeadDim} must be even for rotary embeddings.", nameof(HeadDim));
        if (!(RmsNormEps > 0) || double.IsInfinity(RmsNormEps))
            throw new ArgumentException($"rms_norm_eps {RmsNormEps} must be positive and finite.", nameof(RmsNormEps));
        if (!(RopeTheta > 1) || double.IsInfinity(RopeTheta))
            throw new ArgumentException($"rope_theta {RopeTheta} must be finite and greater than 1.", nameof(RopeTheta));
        return this;
    }

    /// <summary>Reads <paramref name="path"/> (a config.json file, or a folder holding one).</summary>
    /// <exception cref="FileNotFoundException">No config.json there.</exception>
    public static ModelConfig FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file))
            throw new FileNotFoundException($"no Hugging Face config.json at {file}.", file);
        return FromJson(File.ReadAllText(file));
    }

    /// <summary>
    /// Parses a Hugging Face config.json of a supported <c>model_type</c> ("qwen2", "qwen3", "ernie4_5"). Fields the
    /// file omits take the defaults of the transformers config class of that type.
    /// </summary>
    /// <exception cref="ArgumentException">Malformed JSON, a missing required field or an inconsistent size (ParamName "json").</exception>
    /// <exception cref="NotSupportedException">A model type or feature this project does not implement (MoE, RoPE scaling, sliding window, non-SiLU MLP).</exception>
    public static ModelConfig FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"config.json is not valid JSON: {e.Message}", nameof(json), e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ArgumentException("config.json must be a JSON object.", nameof(json));
            string modelType = String(root, "model_type") ?? throw new ArgumentException("config.json has no model_type.", nameof(json));
            var family = modelType switch
            {
                "qwen2" => ModelFamily.Qwen2,
                "qwen3" => ModelFamily.Qwen3,
                "ernie4_5" => ModelFamily.Ernie45,
                _ => throw new NotSupportedException($"model_type '{modelType}' is not supported (supported: qwen2, qwen3, ernie4_5 — dense decoders)."),
            };
            RejectUnsupported(root, family);

            int hidden = RequiredInt(root, "hidden_size");
            int heads = RequiredInt(root, "num_attention_heads");
            if (heads <= 0)
                throw new ArgumentException($"num_attention_heads {heads} must be positive.", nameof(json));
            var config = new ModelConfig
            {
                Family = family,
                HiddenSize = hidden,
                IntermediateSize = RequiredInt(root, "intermediate_size"),
                NumHiddenLayers = RequiredInt(root, "num_hidden_layers"),
                NumAttentionHeads = heads,
                NumKeyValueHeads = Int(root, "num_key_value_heads") ?? heads,
                // transformers: head_dim falls back to hidden_size // num_attention_heads when absent or null.
                HeadDim = Int(root, "head_dim") ?? hidden / heads,
                VocabSize = RequiredInt(root, "vocab_size"),
                RmsNormEps = Double(root, "rms_norm_eps") ?? (family == ModelFamily.Ernie45 ? 1e-5 : 1e-6),
                RopeTheta = Double(root, "rope_theta") ?? (family == ModelFamily.Ernie45 ? 500000 : 10000),
                MaxPositionEmbeddings = Int(root, "max_position_embeddings") ?? (family == ModelFamily.Ernie45 ? 131072 : 32768),
                // Qwen2Config / Qwen3Config default to untied, Ernie4_5Config to tied.
                TieWordEmbeddings = Bool(root, "tie_word_embeddings") ?? family == ModelFamily.Ernie45,
                AttentionBias = family switch
                {
                    ModelFamily.Qwen2 => true,
                    ModelFamily.Qwen3 => Bool(root, "attention_bias") ?? false,
                    _ => false,
                },
                InterleavedRope = family == ModelFamily.Ernie45,
            };
            try
            {
                return config.Validate();
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"config.json: {e.Message}", nameof(json), e);
            }
        }
    }

    /// <summary>
    /// This config as a Hugging Face config.json (the fields <see cref="FromJson"/> reads, plus architectures,
    /// hidden_act and torch_dtype when <paramref name="dtype"/> is given). <see cref="InterleavedRope"/> has no
    /// config.json field: a file written from a config whose style differs from its family's reads back with the family's.
    /// </summary>
    public string ToJson(TorchSharp.torch.ScalarType? dtype = null)
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray(Family switch
            {
                ModelFamily.Qwen2 => "Qwen2ForCausalLM",
                ModelFamily.Qwen3 => "Qwen3ForCausalLM",
                _ => "Ernie4_5ForCausalLM",
            }),
            ["model_type"] = ModelType,
            ["hidden_act"] = "silu",
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["head_dim"] = HeadDim,
            ["vocab_size"] = VocabSize,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["tie_word_embeddings"] = TieWordEmbeddings,
        };
        if (Family == ModelFamily.Qwen3)
            json["attention_bias"] = AttentionBias;
        if (Family == ModelFamily.Ernie45)
            json["use_bias"] = false;
        if (dtype is { } type)
            json["torch_dtype"] = type switch
            {
                TorchSharp.torch.ScalarType.BFloat16 => "bfloat16",
                TorchSharp.torch.ScalarType.Float16 => "float16",
                TorchSharp.torch.ScalarType.Float32 => "float32",
                _ => throw new ArgumentException($"no torch_dtype name for {type}.", nameof(dtype)),
            };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>The Hugging Face <c>model_type</c> string of a family.</summary>
    public static string ModelTypeOf(ModelFamily family) => family switch
    {
        ModelFamily.Qwen2 => "qwen2",
        ModelFamily.Qwen3 => "qwen3",
        ModelFamily.Ernie45 => "ernie4_5",
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, null),
    };

    /// <summary>Features of these families' configs that would change the math: refuse them rather than run a different model.</summary>
    private static void RejectUnsupported(JsonElement root, ModelFamily family)
    {
        if (String(root, "hidden_act") is { } act && act != "silu")
            throw new NotSupportedException($"hidden_act '{act}' is not supported (SwiGLU with silu only).");
        if (root.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind != JsonValueKind.Null)
            throw new NotSupportedException("rope_scaling is set; only plain RoPE (rope_scaling null) is supported.");
        if (Bool(root, "use_sliding_window") == true)
            throw new NotSupportedException("use_sliding_window is true; only full causal attention is supported.");
        if (family == ModelFamily.Ernie45 && Bool(root, "use_bias") == true)
            throw new NotSupportedException("ERNIE-4.5 with use_bias true is not supported (the released dense models have no bias).");
        if (Int(root, "moe_num_experts") is > 0 || Int(root, "num_experts") is > 0)
            throw new NotSupportedException("mixture-of-experts configs are not supported (dense decoders only).");
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
            throw new ArgumentException($"{name} is {value}; it must be positive.", name);
    }

    private static JsonElement? Field(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private static string? String(JsonElement root, string name) => Field(root, name) is { } v
        ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw WrongType(name, "a string", v)
        : null;

    private static int? Int(JsonElement root, string name) => Field(root, name) is { } v
        ? v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw WrongType(name, "an integer", v)
        : null;

    private static int RequiredInt(JsonElement root, string name) =>
        Int(root, name) ?? throw new ArgumentException($"config.json has no {name}.", "json");

    private static double? Double(JsonElement root, string name) => Field(root, name) is { } v
        ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw WrongType(name, "a number", v)
        : null;

    private static bool? Bool(JsonElement root, string name) => Field(root, name) is { } v
        ? v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw WrongType(name, "true or false", v)
        : null;

    private static ArgumentException WrongType(string name, string expected, JsonElement value) =>
        new(string.Create(CultureInfo.InvariantCulture, $"config.json field {name} must be {expected}, got {value.GetRawText()}."), "json");
}
