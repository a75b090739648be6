namespace SageAttn.Tests.Support;

/// <summary>
/// The test classes that create an ILGPU CUDA accelerator (<see cref="CudaAcceleratorFixture"/>). They run one after
/// another once every parallel test has finished, so no libtorch test shares a thread with them.
/// </summary>
/// <remarks>
/// ILGPU's CUDA accelerator creates its own CUDA context and makes it current on whichever thread binds it. The CUDA
/// runtime, and so libtorch, works in the context current on the calling thread: a TorchSharp test that later ran on
/// such an xunit thread allocated and launched in ILGPU's context, on that context's default stream, unordered with
/// its work in the primary context (where our driver-path launches go). The caching allocator saw one "stream 0" and
/// recycled blocks whose pending writes then landed in a new tensor — the intermittent
/// <c>SageAttentionVarlenApiCudaTests</c> failure "the reference's input q is not finite", seen in several full GPU runs.
/// </remarks>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IlgpuCudaCollection
{
    /// <summary>The collection's name, for <c>[Collection]</c>.</summary>
    public const string Name = "ILGPU CUDA accelerator (own context, run alone)";
}
