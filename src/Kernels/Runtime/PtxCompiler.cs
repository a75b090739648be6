using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Intrinsics;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Compiles explicitly grouped ILGPU kernels (static methods) to PTX text offline, with no
/// accelerator and no GPU, for loading with the CUDA driver API in libtorch's primary context.
/// </summary>
/// <remarks>
/// <para>
/// Why offline: an ILGPU <c>CudaAccelerator</c> always creates its own CUDA context, which has no
/// stream ordering with libtorch's primary context. Compiling with a bare <see cref="PTXBackend"/>
/// avoids that context entirely.
/// </para>
/// <para>
/// PTX parameter layout (read from ILGPU 1.5.3 output, see the runtime tests): the parameters of
/// an explicitly grouped kernel are exactly its C# parameters, in order, with no hidden ones,
/// also when the kernel uses dynamic shared memory (the size is read from
/// <c>%dynamic_smem_size</c>, the buffer is an <c>.extern .shared</c> array). An
/// <c>ArrayView&lt;T&gt;</c> is <c>.param .align 8 .b8 [16]</c> = {pointer at +0, int64 length at +8};
/// <c>int</c>/<c>float</c> are <c>.b32</c>/<c>.f32</c>; a user struct is
/// <c>.param .align A .b8 [sizeof]</c> with its natural C# sequential layout (fields read at their
/// C# offsets, nested views included).
/// </para>
/// <para>Thread safety: all members may be called concurrently; results are cached in memory.</para>
/// </remarks>
public sealed class PtxCompiler : IDisposable
{
    private const string DynamicSharedAlign4 = ".extern .shared .align 4 .b8 __dyn_shared_alloca[];";
    private const string DynamicSharedAlign1024 = ".extern .shared .align 1024 .b8 __dyn_shared_alloca[];";
    private static readonly Regex TensorMapParameterLine = new(
        $@"\.param \.align \d+ \.b8 (_tensorMaps_\d+)\[{TensorMapParameter.Bytes}\]", RegexOptions.CultureInvariant);
    private static readonly Regex TargetLine = new(@"^\.target\s+sm_\w+", RegexOptions.Multiline | RegexOptions.CultureInvariant);
    private static readonly Regex EntryLine = new(@"\.entry\s+([A-Za-z_$][\w$]*)", RegexOptions.CultureInvariant);

    private readonly Context _context;
    private readonly ConcurrentDictionary<PtxTarget, PTXBackend> _backends = new();
    private readonly ConcurrentDictionary<string, Lazy<CompiledPtx>> _cache = new();
    // Hits by (method, int values, bounds, target), checked before the full key: building that key (entry description,
    // assembly-qualified name, reflection over the values) took ~13 µs per launch of host time.
    private readonly ConcurrentDictionary<HitKey, CompiledPtx> _hits = new();
    private readonly object _compileLock = new();

    /// <summary>Creates a compiler with an ILGPU context optimized at O2 (O1 emits generic loads/stores).</summary>
    public PtxCompiler()
    {
        _context = Context.Create(builder => builder.Optimize(OptimizationLevel.O2));
    }

    /// <summary>Number of distinct PTX modules compiled so far (cache entries).</summary>
    public int CachedCount => _cache.Count;

    /// <summary>
    /// Compiles <paramref name="kernel"/> for <paramref name="target"/>.
    /// </summary>
    /// <param name="kernel">A static, explicitly grouped ILGPU kernel method.</param>
    /// <param name="target">Architecture, PTX ISA and sm_XYa choice.</param>
    /// <param name="specializedValues">
    /// One value per <see cref="SpecializedValue{T}"/> parameter, in parameter order; either the
    /// <c>SpecializedValue&lt;T&gt;</c> itself or the plain <c>T</c>. Empty for plain kernels.
    /// </param>
    /// <param name="launchBounds">Optional .maxntid / .minnctapersm (ILGPU's <see cref="KernelSpecialization"/>).</param>
    /// <returns>The PTX text and its entry name, cached per (method, values, bounds, target).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="kernel"/> is null.</exception>
    /// <exception cref="ArgumentException">The method is not static or the specialized values do not match its parameters.</exception>
    public CompiledPtx Compile(
        MethodInfo kernel,
        PtxTarget target,
        IReadOnlyList<object>? specializedValues = null,
        KernelSpecialization? launchBounds = null)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        if (!kernel.IsStatic)
        {
            throw new ArgumentException($"Kernel '{kernel.Name}' must be a static method.", nameof(kernel));
        }

        var bounds = launchBounds ?? KernelSpecialization.Empty;
        HitKey? hitKey = HitKey.For(kernel, specializedValues, bounds, target);
        if (hitKey is { } known && _hits.TryGetValue(known, out var hit))
        {
            return hit;
        }

        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        var values = NormalizeSpecializedValues(kernel, entry, specializedValues ?? Array.Empty<object>());
        string key = CacheKeyOf(kernel, values, bounds, target);
        var lazy = _cache.GetOrAdd(key, k => new Lazy<CompiledPtx>(
            () => CompileUncached(entry, values, bounds, target, k),
            LazyThreadSafetyMode.ExecutionAndPublication));
        var compiled = lazy.Value;
        if (hitKey is { } newKey)
        {
            _hits.TryAdd(newKey, compiled);
        }

        return compiled;
    }

    /// <summary>A cache key that is cheap to build: for kernels whose specialized values are all plain <see cref="int"/>s.</summary>
    private readonly record struct HitKey(MethodInfo Kernel, string Values, int MaxThreads, int MinGroups, PtxTarget Target)
    {
        public static HitKey? For(MethodInfo kernel, IReadOnlyList<object>? values, KernelSpecialization bounds, PtxTarget target)
        {
            string joined = string.Empty;
            if (values is { Count: > 0 })
            {
                var parts = new string[values.Count];
                for (int i = 0; i < parts.Length; i++)
                {
                    if (values[i] is not int value)
                    {
                        return null;
                    }

                    parts[i] = value.ToString(CultureInfo.InvariantCulture);
                }

                joined = string.Join(',', parts);
            }

            return new HitKey(kernel, joined, bounds.MaxNumThreadsPerGroup ?? 0, bounds.MinNumGroupsPerMultiprocessor ?? 0, target);
        }
    }

    /// <summary>Replaces the <c>.target</c> line of a PTX module, e.g. to write <c>sm_90a</c>.</summary>
    /// <exception cref="ArgumentException">The text has no <c>.target</c> line.</exception>
    public static string PatchTarget(string ptx, string targetName)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        ArgumentException.ThrowIfNullOrWhiteSpace(targetName);
        if (!TargetLine.IsMatch(ptx))
        {
            throw new ArgumentException("The PTX text has no '.target sm_XY' line.", nameof(ptx));
        }

        return TargetLine.Replace(ptx, ".target " + targetName, 1);
    }

    /// <summary>
    /// Gives a kernel's <c>tensorMaps</c> parameter (<see cref="TensorMapParameter"/>) the name the copy intrinsics use
    /// (<see cref="TensorCopy.ParameterName"/>) and the 64-byte alignment tensor maps need; other PTX is returned as is.
    /// </summary>
    public static string NameTensorMapParameter(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        var match = TensorMapParameterLine.Match(ptx);
        if (!match.Success)
        {
            return ptx;
        }

        string name = match.Groups[1].Value;
        ptx = TensorMapParameterLine.Replace(ptx, $".param .align 64 .b8 {TensorCopy.ParameterName}[{TensorMapParameter.Bytes}]", 1);
        return Regex.Replace(ptx, $@"\b{Regex.Escape(name)}\b", TensorCopy.ParameterName);
    }

    /// <summary>Finds the single <c>.entry</c> name of a PTX module.</summary>
    /// <exception cref="ArgumentException">The text has no <c>.entry</c>.</exception>
    public static string FindEntryName(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        var match = EntryLine.Match(ptx);
        return match.Success
            ? match.Groups[1].Value
            : throw new ArgumentException("The PTX text has no '.entry' function.", nameof(ptx));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var backend in _backends.Values)
        {
            backend.Dispose();
        }

        _backends.Clear();
        _context.Dispose();
    }

    private CompiledPtx CompileUncached(
        EntryPointDescription entry,
        IReadOnlyList<object> values,
        KernelSpecialization bounds,
        PtxTarget target,
        string key)
    {
        // ILGPU's IR contexts are not meant for concurrent compiles of one backend; compiles are
        // rare (once per variant) so one lock is enough.
        lock (_compileLock)
        {
            var backend = _backends.GetOrAdd(target, CreateBackend);
            var compiled = values.Count == 0
                ? backend.Compile(entry, bounds)
                : KernelSpecializer.Compile(backend, entry, values, bounds);
            // ILGPU routes inline-PTX out/ref operands through local-memory slots; make them registers again.
            var ptx = PtxLocalPromotion.Apply(((PTXCompiledKernel)compiled).PTXAssembly).Ptx;
            ptx = PtxResidentRegisters.Hoist(ptx);
            ptx = PtxConstantBranches.Apply(ptx);
            if (target.ArchSpecific)
            {
                ptx = PatchTarget(ptx, target.TargetName);
                // The copy engine writes swizzled tiles at 1024-byte aligned shared addresses (offsets from the dynamic base).
                ptx = ptx.Replace(DynamicSharedAlign4, DynamicSharedAlign1024, StringComparison.Ordinal);
                ptx = NameTensorMapParameter(ptx);
            }

            return new CompiledPtx(ptx, FindEntryName(ptx), target, key);
        }
    }

    private PTXBackend CreateBackend(PtxTarget target)
    {
        // The capability context decides which instructions ILGPU may use; its constructor clamps
        // the architecture (it reported SM_80 for SM_90 here), so raise it explicitly.
        var capabilities = new CudaCapabilityContext(target.Architecture);
        var property = typeof(CudaCapabilityContext).GetProperty(nameof(CudaCapabilityContext.TargetArchitecture))
            ?? throw new InvalidOperationException("ILGPU's CudaCapabilityContext has no TargetArchitecture property.");
        property.SetValue(capabilities, target.Architecture);
        return new PTXBackend(_context, capabilities, target.Architecture, target.InstructionSet, null);
    }

    private static object[] NormalizeSpecializedValues(
        MethodInfo kernel,
        EntryPointDescription entry,
        IReadOnlyList<object> values)
    {
        var specialized = entry.Parameters.SpecializedParameters;
        if (values.Count != specialized.Length)
        {
            throw new ArgumentException(
                $"Kernel '{kernel.Name}' has {specialized.Length} SpecializedValue parameter(s) but {values.Count} value(s) were given.",
                nameof(values));
        }

        var result = new object[values.Count];
        for (int i = 0; i < values.Count; i++)
        {
            // Explicitly grouped kernels have no index parameter, so Index is the C# parameter position.
            var parameterType = kernel.GetParameters()[specialized[i].Index].ParameterType;
            var elementType = parameterType.GetGenericArguments()[0];
            var value = values[i] ?? throw new ArgumentException(
                $"Specialized value {i} of kernel '{kernel.Name}' is null.", nameof(values));
            if (value.GetType() == parameterType)
            {
                result[i] = value;
            }
            else if (value.GetType() == elementType)
            {
                result[i] = Activator.CreateInstance(parameterType, value)!;
            }
            else
            {
                throw new ArgumentException(
                    $"Specialized value {i} of kernel '{kernel.Name}' is a {value.GetType().Name}; expected {elementType.Name} or {parameterType.Name}.",
                    nameof(values));
            }
        }

        return result;
    }

    private static string CacheKeyOf(MethodInfo kernel, object[] values, KernelSpecialization bounds, PtxTarget target)
    {
        string specialized = string.Join(",", values.Select(v => Convert.ToString(
            v.GetType().GetProperty("Value")!.GetValue(v), CultureInfo.InvariantCulture)));
        return string.Create(CultureInfo.InvariantCulture,
            $"{kernel.DeclaringType?.AssemblyQualifiedName}::{kernel.MetadataToken}:{kernel.Name}<{specialized}>" +
            $"|bounds={bounds.MaxNumThreadsPerGroup},{bounds.MinNumGroupsPerMultiprocessor}|{target.TargetName}|isa={target.InstructionSet}");
    }
}
