using System.Runtime.InteropServices;

namespace SageAttn.Backend;

/// <summary>
/// Lets TorchSharp use an existing CUDA libtorch folder (for example a pip torch's
/// <c>site-packages/torch/lib</c>) named by the environment variable
/// <see cref="EnvironmentVariable"/>, and reports where libtorch came from.
/// </summary>
/// <remarks>
/// TorchSharp has no setting for a libtorch folder: it calls <c>NativeLibrary.TryLoad("torch_cuda")</c>
/// / <c>("torch_cpu")</c> and then loads <c>LibTorchSharp</c>, which resolves its libtorch symbols
/// through the process's already loaded libraries. Loading that folder's libraries by full path
/// first (dependencies before dependents) makes those names resolve to them. Must run before the
/// first <c>torch.*</c> call; a second libtorch build in one process (e.g. TorchSharp-cpu's copy
/// next to the app) must be avoided. Idempotent and cheap after the first call.
/// </remarks>
public static class LibTorchLoader
{
    /// <summary>Names a folder holding libtorch's shared libraries (libc10.so, libtorch_cpu.so, ...).</summary>
    public const string EnvironmentVariable = "SAGEATTN_LIBTORCH_DIR";

    /// <summary>Load order: each library after the ones it links against.</summary>
    private static readonly string[] LoadOrder =
    {
        "libc10.so",
        "libtorch_cpu.so",
        "libc10_cuda.so",
        "libtorch_cuda.so",
        "libtorch.so",
    };

    private static readonly object Gate = new();
    private static LibTorchSource? _source;

    /// <summary>
    /// Loads libtorch from <see cref="EnvironmentVariable"/> when it is set; otherwise leaves the
    /// choice to TorchSharp (its NuGet runtime package or the loader path). Returns the outcome.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The variable names a folder that does not exist.</exception>
    /// <exception cref="FileNotFoundException">The folder has no libc10.so or libtorch_cpu.so.</exception>
    /// <exception cref="DllNotFoundException">A library exists but fails to load (the message has the loader's reason).</exception>
    public static LibTorchSource EnsureLoaded() => EnsureLoaded(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>Same as <see cref="EnsureLoaded()"/> with an explicit folder (null or empty = TorchSharp's default).</summary>
    public static LibTorchSource EnsureLoaded(string? directory)
    {
        if (!string.IsNullOrWhiteSpace(directory) && !Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException(
                $"{EnvironmentVariable} names '{directory}', which does not exist.");
        }

        lock (Gate)
        {
            if (_source is not null)
            {
                return _source;
            }

            _source = string.IsNullOrWhiteSpace(directory)
                ? new LibTorchSource(null, Array.Empty<string>(), "TorchSharp default (NuGet libtorch runtime package or the OS loader path)")
                : LoadFolder(Path.GetFullPath(directory));
            return _source;
        }
    }

    /// <summary>What <see cref="EnsureLoaded()"/> did, or null if it has not run.</summary>
    public static LibTorchSource? Current
    {
        get
        {
            lock (Gate)
            {
                return _source;
            }
        }
    }

    private static LibTorchSource LoadFolder(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException(
                $"{EnvironmentVariable} names '{directory}', which does not exist.");
        }

        foreach (var required in new[] { "libc10.so", "libtorch_cpu.so" })
        {
            if (!File.Exists(Path.Combine(directory, required)))
            {
                throw new FileNotFoundException(
                    $"{EnvironmentVariable} names '{directory}', which has no {required}; expected a libtorch lib folder such as <site-packages>/torch/lib.",
                    Path.Combine(directory, required));
            }
        }

        var loaded = new List<string>();
        foreach (var name in LoadOrder)
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path))
            {
                continue;
            }

            try
            {
                NativeLibrary.Load(path);
            }
            catch (DllNotFoundException e)
            {
                throw new DllNotFoundException($"Loading {path} from {EnvironmentVariable} failed: {e.Message}", e);
            }

            loaded.Add(path);
        }

        bool cuda = loaded.Any(p => p.EndsWith("libtorch_cuda.so", StringComparison.Ordinal));
        return new LibTorchSource(
            directory,
            loaded,
            $"{EnvironmentVariable}={directory} ({(cuda ? "CUDA" : "CPU-only")} libtorch)");
    }
}
