using SageAttn.Backend.Engine;

namespace SageAttn.Tests.Engine;

/// <summary>Selecting backends by name and from SAGEATTN_ATTENTION_BACKEND (the only tests touching that variable: one class, run serially).</summary>
public sealed class AttentionBackendRegistryTests
{
    private static readonly AttentionBackendConfig Config = new(numLayers: 2, numHeads: 4, kvHeads: 2, headDim: 64);

    [Fact]
    public void BuiltInsAreSelectedByName()
    {
        using var sage = AttentionBackendRegistry.Create("SAGE_ATTN", Config);
        using var sdpa = AttentionBackendRegistry.Create("sdpa", Config);
        Assert.IsType<SageAttentionBackend>(sage);
        Assert.IsType<SdpaAttentionBackend>(sdpa);
        Assert.Equal("SAGE_ATTN", sage.Name);
        Assert.Equal("SDPA", sdpa.Name);
        Assert.Same(Config, sage.Config);
        Assert.Contains("SAGE_ATTN", AttentionBackendRegistry.Names);
        Assert.Contains("SDPA", AttentionBackendRegistry.Names);
    }

    [Fact]
    public void UnknownNamesListTheRegisteredOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => AttentionBackendRegistry.Create("FLASH_ATTN", Config));
        Assert.Equal("name", e.ParamName);
        Assert.Contains("FLASH_ATTN", e.Message);
        Assert.Contains("SAGE_ATTN", e.Message);
        Assert.Contains("SDPA", e.Message);
    }

    [Fact]
    public void RegisteredBackendsCanBeCreated()
    {
        AttentionBackendRegistry.Register("TEST_REGISTRY_SDPA", c => new SdpaAttentionBackend(c));
        using var backend = AttentionBackendRegistry.Create("test_registry_sdpa", Config);
        Assert.IsType<SdpaAttentionBackend>(backend);
        Assert.Equal("name", Assert.Throws<ArgumentException>(() => AttentionBackendRegistry.Register(" ", c => new SdpaAttentionBackend(c))).ParamName);
    }

    [Fact]
    public void EnvironmentVariableSelectsTheBackend()
    {
        string? saved = Environment.GetEnvironmentVariable(AttentionBackendRegistry.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(AttentionBackendRegistry.EnvironmentVariable, "SDPA");
            using (var backend = AttentionBackendRegistry.CreateFromEnvironment(Config))
                Assert.IsType<SdpaAttentionBackend>(backend);

            Environment.SetEnvironmentVariable(AttentionBackendRegistry.EnvironmentVariable, null);
            using (var backend = AttentionBackendRegistry.CreateFromEnvironment(Config))
                Assert.IsType<SageAttentionBackend>(backend);

            Environment.SetEnvironmentVariable(AttentionBackendRegistry.EnvironmentVariable, "NO_SUCH_BACKEND");
            var e = Assert.Throws<ArgumentException>(() => AttentionBackendRegistry.CreateFromEnvironment(Config));
            Assert.Contains("NO_SUCH_BACKEND", e.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(AttentionBackendRegistry.EnvironmentVariable, saved);
        }
    }
}
