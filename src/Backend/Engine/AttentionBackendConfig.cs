using System.Diagnostics.CodeAnalysis;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// What an attention backend is built with: the model's attention shape, the paged cache's block size, RoPE and the
/// kernels' settings. One config per model; every layer shares it.
/// </summary>
/// <remarks>
/// Set the four shape members either through the constructor or with an object initializer; the rest have the
/// defaults of the target models (block size 64 as FastDeploy, NeoX RoPE, fp16).
/// <see cref="Validate"/> is called by the backends' constructors, so a bad config fails where it is made.
/// </remarks>
public sealed record AttentionBackendConfig
{
    /// <summary>A config to fill with an object initializer.</summary>
    public AttentionBackendConfig()
    {
    }

    /// <summary>A config with the model's attention shape and default settings for the rest.</summary>
    [SetsRequiredMembers]
    public AttentionBackendConfig(int numLayers, int numHeads, int kvHeads, int headDim)
    {
        NumLayers = numLayers;
        NumHeads = numHeads;
        KvHeads = kvHeads;
        HeadDim = headDim;
    }

    /// <summary>Decoder layers (one key and one value cache each).</summary>
    public required int NumLayers { get; init; }

    /// <summary>Query heads (H).</summary>
    public required int NumHeads { get; init; }

    /// <summary>Key/value heads (Hkv); <see cref="NumHeads"/> must be a multiple (grouped-query attention, any group size).</summary>
    public required int KvHeads { get; init; }

    /// <summary>Channels per head (D), even (RoPE rotates channel pairs), at most 128 (the Sage kernels' limit).</summary>
    public required int HeadDim { get; init; }

    /// <summary>Tokens per KV-cache block.</summary>
    public int BlockSize { get; init; } = 64;

    /// <summary>Channel pairing of the rotary embedding (the checkpoint decides).</summary>
    public RopeStyle RopeStyle { get; init; } = RopeStyle.Neox;

    /// <summary>RoPE base θ (1e6 for Qwen2.5/Qwen3, 5e5 for ERNIE-4.5).</summary>
    public double RopeTheta { get; init; } = 10_000;

    /// <summary>Positions the rotary table covers: the longest request (cached + new tokens) the engine may run.</summary>
    public int MaxPositions { get; init; } = 4096;

    /// <summary>Softmax scale; null means 1/√<see cref="HeadDim"/>.</summary>
    public double? SmScale { get; init; }

    /// <summary>Sage kernel settings (variant, INT8 granularity, smoothing); null means <see cref="SageAttentionSettings.Default"/>.</summary>
    public SageAttentionSettings? Sage { get; init; }

    /// <summary>dtype of qkv, the output and the KV cache: Float16 or BFloat16.</summary>
    public ScalarType DType { get; init; } = ScalarType.Float16;

    /// <summary>The softmax scale in effect (<see cref="SmScale"/> or 1/√D).</summary>
    public double Scale => SmScale ?? 1.0 / Math.Sqrt(HeadDim);

    /// <summary>Query heads per key/value head.</summary>
    public int GroupSize => NumHeads / KvHeads;

    /// <summary>Width of a packed qkv row: (H + 2·Hkv)·D.</summary>
    public int QkvWidth => (NumHeads + 2 * KvHeads) * HeadDim;

    /// <summary>Checks every member; the exception's ParamName is the member's name.</summary>
    /// <exception cref="ArgumentException">A member is out of range or inconsistent with another.</exception>
    public void Validate()
    {
        Positive(NumLayers, nameof(NumLayers));
        Positive(NumHeads, nameof(NumHeads));
        Positive(KvHeads, nameof(KvHeads));
        Positive(HeadDim, nameof(HeadDim));
        Positive(BlockSize, nameof(BlockSize));
        Positive(MaxPositions, nameof(MaxPositions));
        if (NumHeads % KvHeads != 0)
            throw new ArgumentException($"NumHeads ({NumHeads}) must be a multiple of KvHeads ({KvHeads}).", nameof(KvHeads));
        if (HeadDim % 2 != 0 || HeadDim > 128)
            throw new ArgumentException($"HeadDim must be even (RoPE rotates channel pairs) and at most 128, got {HeadDim}.", nameof(HeadDim));
        if (!(RopeTheta > 1) || double.IsInfinity(RopeTheta))
            throw new ArgumentException($"RopeTheta must be a finite number above 1, got {RopeTheta}.", nameof(RopeTheta));
        if (!Enum.IsDefined(RopeStyle))
            throw new ArgumentException($"RopeStyle {(int)RopeStyle} is not a defined style.", nameof(RopeStyle));
        if (SmScale is { } s && (!(s > 0) || double.IsInfinity(s)))
            throw new ArgumentException($"SmScale must be positive and finite, got {s}.", nameof(SmScale));
        if (DType != ScalarType.Float16 && DType != ScalarType.BFloat16)
            throw new ArgumentException($"DType must be Float16 or BFloat16, got {DType}.", nameof(DType));
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
            throw new ArgumentException($"{name} must be positive, got {value}.", name);
    }
}
