using System.Runtime.InteropServices;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// The 16-byte device image of an ILGPU <c>ArrayView&lt;T&gt;</c> parameter or struct field:
/// {device pointer at +0, element count as int64 at +8}, aligned to 8.
/// </summary>
/// <remarks>
/// <c>ArrayView&lt;T&gt;</c> itself holds a managed buffer reference, so it is not
/// <c>unmanaged</c> and cannot be copied into launch parameters. A kernel parameter struct that
/// contains views needs a host mirror struct with the same field order in which each view is a
/// <see cref="DeviceView"/>; pass that mirror to <see cref="KernelArgs.Add{T}"/>.
/// </remarks>
/// <param name="Pointer">Device address of element 0.</param>
/// <param name="Length">Number of elements (not bytes).</param>
[StructLayout(LayoutKind.Sequential, Pack = 8)]
public readonly record struct DeviceView(IntPtr Pointer, long Length);
