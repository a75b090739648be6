namespace SageAttn.Tests.Support;

/// <summary>
/// Test classes that measure the device's free memory (<c>cuMemGetInfo</c>, which counts every allocation on the GPU).
/// They run one after another once every parallel test has finished: a GPU test of another class allocating at the
/// same time moved the reading by 192 MB in one full GPU run (H100, 2026-11-26) and failed the memory-stability bar.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DeviceMemoryCollection
{
    /// <summary>The collection's name, for <c>[Collection]</c>.</summary>
    public const string Name = "Device free-memory readings (run alone)";
}
