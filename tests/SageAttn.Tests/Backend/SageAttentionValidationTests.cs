using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>The bad-input matrix: each case asserts the exception type and that the argument is named.</summary>
public sealed class SageAttentionValidationTests
{
    private static Tensor T(params long[] shape) => torch.zeros(shape, ScalarType.Float16);

    public static TheoryData<string, Type, string> Cases => new()
    {
        { "dtype float32", typeof(NotSupportedException), "q" },
        { "dtype mismatch", typeof(ArgumentException), "k" },
        { "rank 3", typeof(ArgumentException), "q" },
        { "layout", typeof(ArgumentException), "tensor_layout" },
        { "last-dim stride", typeof(ArgumentException), "k" },
        { "head_dim 160", typeof(ArgumentException), "q" },
        { "head_dim k != q", typeof(ArgumentException), "k" },
        { "Hq % Hkv", typeof(ArgumentException), "k" },
        { "zero length", typeof(ArgumentException), "v" },
        { "batch", typeof(ArgumentException), "v" },
        { "v tokens", typeof(ArgumentException), "v" },
        { "sm_scale", typeof(ArgumentException), "sm_scale" },
        { "too long", typeof(ArgumentException), "q" },
        { "null", typeof(ArgumentNullException), "v" },
        { "sdpa mask", typeof(NotSupportedException), "attn_mask" },
        { "sdpa dropout", typeof(NotSupportedException), "dropout_p" },
        { "sdpa heads without gqa", typeof(ArgumentException), "key" },
        { "sdpa scale", typeof(ArgumentException), "scale" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void RejectsAndNamesTheArgument(string name, Type exceptionType, string argument)
    {
        Action call = name switch
        {
            "dtype float32" => () => SageAttention.sageattn(torch.zeros(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 8, 64)),
            "dtype mismatch" => () => SageAttention.sageattn(T(1, 1, 8, 64), torch.zeros([1, 1, 8, 64], ScalarType.BFloat16), T(1, 1, 8, 64)),
            "rank 3" => () => SageAttention.sageattn(T(1, 8, 64), T(1, 1, 8, 64), T(1, 1, 8, 64)),
            "layout" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 8, 64), tensor_layout: "BHSD"),
            "last-dim stride" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 64, 8).transpose(2, 3), T(1, 1, 8, 64)),
            "head_dim 160" => () => SageAttention.sageattn(T(1, 1, 8, 160), T(1, 1, 8, 160), T(1, 1, 8, 160)),
            "head_dim k != q" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 8, 32), T(1, 1, 8, 64)),
            "Hq % Hkv" => () => SageAttention.sageattn(T(1, 3, 8, 64), T(1, 2, 8, 64), T(1, 2, 8, 64)),
            "zero length" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 0, 64)),
            "batch" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 8, 64), T(2, 1, 8, 64)),
            "v tokens" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 9, 64)),
            "sm_scale" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 8, 64), sm_scale: -1),
            // An expanded (stride-0) view: 2^25 tokens x 64 exceeds 32-bit per-head indexing without allocating it.
            "too long" => () => SageAttention.sageattn(T(1, 1, 1, 64).expand(1, 1, 1L << 25, 64), T(1, 1, 8, 64), T(1, 1, 8, 64)),
            "null" => () => SageAttention.sageattn(T(1, 1, 8, 64), T(1, 1, 8, 64), null!),
            "sdpa mask" => () => SageAttention.scaled_dot_product_attention(T(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 8, 64), attn_mask: torch.ones(8, 8)),
            "sdpa dropout" => () => SageAttention.scaled_dot_product_attention(T(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 8, 64), dropout_p: 0.1),
            "sdpa heads without gqa" => () => SageAttention.scaled_dot_product_attention(T(1, 4, 8, 64), T(1, 2, 8, 64), T(1, 2, 8, 64)),
            "sdpa scale" => () => SageAttention.scaled_dot_product_attention(T(1, 1, 8, 64), T(1, 1, 8, 64), T(1, 1, 8, 64), scale: double.NaN),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };

        var e = Assert.Throws(exceptionType, call);
        bool named = (e is ArgumentException a && a.ParamName == argument) || e.Message.Contains(argument, StringComparison.Ordinal);
        Assert.True(named, $"{name}: '{e.Message}' does not name {argument}");
    }

    [Fact]
    public void AutoVariantFollowsArchitecture()
    {
        Assert.Equal(Kernels.Attention.AttentionVariant.QkInt8PvFp16, VariantSelector.Auto((8, 0)));
        Assert.Equal(Kernels.Attention.AttentionVariant.QkInt8PvFp16, VariantSelector.Auto((8, 6)));
        Assert.Equal(Kernels.Attention.AttentionVariant.QkInt8PvFp8Fp16Accum, VariantSelector.Auto((8, 9)));
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp8, VariantSelector.Auto((9, 0)));
        // Packed sequences on sm_90 keep FP16 P·V, on the wgmma kernel; newer GPUs cannot run sm_90a code.
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp16, VariantSelector.Auto((9, 0), packed: true));
        Assert.Equal(Kernels.Attention.AttentionVariant.QkInt8PvFp16, VariantSelector.Auto((10, 0)));
        Assert.Equal(Kernels.Attention.AttentionVariant.QkInt8PvFp16, VariantSelector.Auto((10, 0), packed: true));
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp16, SageAttentionSettings.Default.Resolve((9, 0), packed: true).Variant);
        // An explicit variant is kept for packed calls too (the wgmma kernel has a packed form), on the CPU emulation as well.
        var hopper = new SageAttentionSettings { Variant = Kernels.Attention.AttentionVariant.HopperQkInt8PvFp8 };
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp8, hopper.Resolve((9, 0)).Variant);
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp8, hopper.Resolve((9, 0), packed: true).Variant);
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp8, hopper.Resolve(null, packed: true).Variant);
        Assert.Contains("sm_90", Assert.Throws<NotSupportedException>(() => hopper.Resolve((8, 9), packed: true)).Message);
        Assert.Throws<NotSupportedException>(() => VariantSelector.Auto((7, 5)));
        var e = Assert.Throws<NotSupportedException>(() => new SageAttentionSettings { Variant = Kernels.Attention.AttentionVariant.QkInt8PvFp8 }.Resolve((8, 6)));
        Assert.Contains("options.Variant", e.Message);
        Assert.Equal(VariantSelector.Cpu, SageAttentionSettings.Default.Resolve(null).Variant);
    }

    [Fact]
    public void AccurateModeOnWgmmaNeedsSm90()
    {
        var accurate = new SageAttentionSettings { Variant = Kernels.Attention.AttentionVariant.HopperQkInt8PvFp16 };
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp16, accurate.Resolve((9, 0)).Variant);
        var older = Assert.Throws<NotSupportedException>(() => accurate.Resolve((8, 9))).Message;
        Assert.Contains("sm_90", older);
        // The advice keeps the accurate numerics instead of falling back to the device's (less accurate) default.
        Assert.Contains($"Use {nameof(Kernels.Attention.AttentionVariant.QkInt8PvFp16)}", older);
        Assert.Contains("sm_90", Assert.Throws<NotSupportedException>(() => accurate.Resolve((10, 0))).Message);
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp16, accurate.Resolve((9, 0), packed: true).Variant);
        // The automatic choice on sm_90 stays the FP8 wgmma kernel.
        Assert.Equal(Kernels.Attention.AttentionVariant.HopperQkInt8PvFp8, VariantSelector.Auto((9, 0)));
    }
}
