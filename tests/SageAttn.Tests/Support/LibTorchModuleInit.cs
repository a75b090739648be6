using System.Runtime.CompilerServices;
using SageAttn.Backend;

namespace SageAttn.Tests.Support;

/// <summary>
/// Loads libtorch from SAGEATTN_LIBTORCH_DIR (e.g. a pip torch's torch/lib with CUDA) before any test touches
/// TorchSharp, so the GPU bundle gets CUDA libtorch and CI gets TorchSharp-cpu.
/// </summary>
internal static class LibTorchModuleInit
{
    [ModuleInitializer]
    internal static void Load() => LibTorchLoader.EnsureLoaded();
}
