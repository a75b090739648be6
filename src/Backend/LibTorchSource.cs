namespace SageAttn.Backend;

/// <summary>Where the process's libtorch came from (for <c>sageattn info</c> and error messages).</summary>
/// <param name="Directory">The folder loaded from, or null when TorchSharp chose it.</param>
/// <param name="LoadedLibraries">Full paths loaded, in order; empty when TorchSharp chose.</param>
/// <param name="Description">One line for humans.</param>
public sealed record LibTorchSource(string? Directory, IReadOnlyList<string> LoadedLibraries, string Description);
