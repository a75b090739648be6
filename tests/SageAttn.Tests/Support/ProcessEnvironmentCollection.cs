namespace SageAttn.Tests.Support;

/// <summary>
/// Test classes that set a process environment variable the library reads per call (such as
/// <c>SAGEATTN_PACKED_WGMMA</c>) and restore it: they run alone once every parallel test has finished, so no other test
/// sees the changed value.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    /// <summary>The collection's name, for <c>[Collection]</c>.</summary>
    public const string Name = "Process environment changes (run alone)";
}
