using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.IR;
using ILGPU.Runtime;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Bakes the values of <see cref="SpecializedValue{T}"/> parameters into a kernel's IR before
/// PTX generation, the way ILGPU's accelerator does it internally for specialized launchers.
/// </summary>
/// <remarks>
/// ILGPU 1.5.3 only specializes inside <c>Accelerator.LoadKernel</c> (its internal
/// <c>SpecializationCache</c>), which needs an accelerator. The same steps are public API:
/// <c>Backend.PreCompileKernelMethod</c> gives the IR method, <c>ExtractToContext</c> copies it
/// into a private IR context, a wrapper method calls it with constants in the specialized slots,
/// <c>IRContext.Optimize</c> inlines the kernel into the wrapper and folds the constants, and
/// <c>Backend.Compile(Method, ...)</c> emits PTX.
/// The wrapper keeps every original parameter, so the PTX parameter list is unchanged: a
/// specialized parameter still occupies its slot (a <c>SpecializedValue&lt;int&gt;</c> is a
/// <c>.param .b32</c>) and the launcher must still pass a value of that size there; the kernel
/// ignores it. The <c>.entry</c> name stays <c>Kernel_&lt;MethodName&gt;</c>.
/// </remarks>
internal static class KernelSpecializer
{
    /// <summary>Compiles <paramref name="entry"/> with the given values in its specialized parameter slots.</summary>
    /// <param name="backend">The PTX backend that compiles the wrapper.</param>
    /// <param name="entry">The explicitly grouped kernel's entry description.</param>
    /// <param name="values">One boxed <see cref="SpecializedValue{T}"/> per specialized parameter, in parameter order.</param>
    /// <param name="launchBounds">ILGPU's kernel specialization (.maxntid / .minnctapersm).</param>
    public static CompiledKernel Compile(
        Backend backend,
        EntryPointDescription entry,
        IReadOnlyList<object> values,
        KernelSpecialization launchBounds)
    {
        var kernelMethod = backend.PreCompileKernelMethod(entry);
        using var kernelContext = kernelMethod.ExtractToContext(out var kernel);
        var wrapper = kernelContext.Declare(
            new MethodDeclaration(MethodHandle.Create("SpecializedLauncher"), kernelContext.VoidType),
            out _);

        // Inlining the kernel into the wrapper is what lets the optimizer fold the constants.
        kernel.AddFlags(MethodFlags.Inline);

        var specialized = entry.Parameters.SpecializedParameters;
        int parameterOffset = entry.KernelIndexParameterOffset;
        using (var methodBuilder = wrapper.CreateBuilder())
        {
            var location = wrapper.Location;
            var block = methodBuilder.EntryBlockBuilder;
            var call = block.CreateCall(location, kernel);
            int next = 0;
            for (int i = 0; i < kernel.NumParameters; i++)
            {
                var parameter = kernel.Parameters[i];
                var wrapperParameter = methodBuilder.AddParameter(parameter.Type, parameter.Name);
                if (next < specialized.Length && specialized[next].Index == i - parameterOffset)
                {
                    call.Add(block.CreateObjectValue(location, values[next]));
                    next++;
                }
                else
                {
                    call.Add(wrapperParameter);
                }
            }

            call.Seal();
            block.CreateReturn(location);
            methodBuilder.Complete();
        }

        kernelContext.Optimize();
        return backend.Compile(wrapper, entry, launchBounds);
    }
}
