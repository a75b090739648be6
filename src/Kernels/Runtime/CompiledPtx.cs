namespace SageAttn.Kernels.Runtime;

/// <summary>
/// PTX text for one kernel, ready for <c>cuModuleLoadData</c>, with the <c>.entry</c> name to
/// pass to <c>cuModuleGetFunction</c>.
/// </summary>
/// <param name="Ptx">The PTX module text (one <c>.entry</c>).</param>
/// <param name="EntryName">The entry function name, e.g. <c>Kernel_Axpb</c>.</param>
/// <param name="Target">What the text was generated for.</param>
/// <param name="CacheKey">
/// Identifies (kernel method, specialization values, launch bounds, target); modules loaded
/// from this PTX are cached under it.
/// </param>
public sealed record CompiledPtx(string Ptx, string EntryName, PtxTarget Target, string CacheKey);
