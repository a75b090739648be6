namespace SageAttn.Backend.Engine;

/// <summary>
/// Attention backends by name, like FastDeploy's FD_ATTENTION_BACKEND: the engine asks for a name (from its
/// configuration or <see cref="EnvironmentVariable"/>) and gets a backend built for its config.
/// </summary>
/// <remarks>Names are case-insensitive. Built in: "SAGE_ATTN" (<see cref="SageAttentionBackend"/>, the default) and "SDPA" (<see cref="SdpaAttentionBackend"/>). Thread-safe.</remarks>
public static class AttentionBackendRegistry
{
    /// <summary>The environment variable <see cref="CreateFromEnvironment"/> reads.</summary>
    public const string EnvironmentVariable = "SAGEATTN_ATTENTION_BACKEND";

    /// <summary>The backend used when the variable is unset or empty.</summary>
    public const string DefaultName = SageAttentionBackend.BackendName;

    private static readonly object Gate = new();
    private static readonly Dictionary<string, Func<AttentionBackendConfig, AttentionBackend>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        [SageAttentionBackend.BackendName] = config => new SageAttentionBackend(config),
        [SdpaAttentionBackend.BackendName] = config => new SdpaAttentionBackend(config),
    };

    /// <summary>The registered names, sorted.</summary>
    public static IReadOnlyList<string> Names
    {
        get
        {
            lock (Gate)
                return [.. Factories.Keys.Order(StringComparer.OrdinalIgnoreCase)];
        }
    }

    /// <summary>Registers (or replaces) the backend called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or blank.</exception>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public static void Register(string name, Func<AttentionBackendConfig, AttentionBackend> factory)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(factory);
        if (string.IsNullOrWhiteSpace(name))
            throw new ArgumentException("a backend name must not be blank.", nameof(name));
        lock (Gate)
            Factories[name.Trim()] = factory;
    }

    /// <summary>Builds the backend called <paramref name="name"/> for <paramref name="config"/>.</summary>
    /// <exception cref="ArgumentException">No backend has that name (the message lists the registered ones), or the config is invalid.</exception>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public static AttentionBackend Create(string name, AttentionBackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(config);
        Func<AttentionBackendConfig, AttentionBackend>? factory;
        lock (Gate)
            Factories.TryGetValue(name.Trim(), out factory);
        if (factory is null)
            throw new ArgumentException($"unknown attention backend \"{name}\"; registered: {string.Join(", ", Names)}.", nameof(name));
        return factory(config);
    }

    /// <summary>Builds the backend named by <see cref="EnvironmentVariable"/>, or <see cref="DefaultName"/> when it is unset or empty.</summary>
    /// <exception cref="ArgumentException">The variable names no registered backend, or the config is invalid.</exception>
    public static AttentionBackend CreateFromEnvironment(AttentionBackendConfig config)
    {
        string? name = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return Create(string.IsNullOrWhiteSpace(name) ? DefaultName : name, config);
    }
}
