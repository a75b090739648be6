using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// What PTX is generated for: the SM architecture, the PTX ISA version and whether the
/// architecture-specific suffix (<c>sm_90a</c>) is written into the <c>.target</c> line.
/// </summary>
/// <remarks>
/// ILGPU 1.5.3 caps its own choice at <c>sm_80</c> and cannot express <c>sm_90a</c>; the
/// compiler raises the capability context to <see cref="Architecture"/> and, when
/// <see cref="ArchSpecific"/> is set, patches the text (wgmma/setmaxnreg need <c>sm_90a</c>).
/// </remarks>
/// <param name="Architecture">Target SM architecture, e.g. <see cref="CudaArchitecture.SM_90"/>.</param>
/// <param name="InstructionSet">PTX ISA version written in <c>.version</c>; the driver must accept it.</param>
/// <param name="ArchSpecific">Write <c>.target sm_XYa</c> instead of <c>.target sm_XY</c>.</param>
public readonly record struct PtxTarget(
    CudaArchitecture Architecture,
    CudaInstructionSet InstructionSet,
    bool ArchSpecific = false)
{
    /// <summary>H100/H200 with PTX ISA 8.5 (CUDA 12.5+ drivers), plain <c>sm_90</c>.</summary>
    public static PtxTarget Hopper => new(CudaArchitecture.SM_90, CudaInstructionSet.ISA_85);

    /// <summary>The <c>.target</c> operand this target produces, e.g. <c>sm_90a</c>.</summary>
    public string TargetName =>
        $"sm_{Architecture.Major}{Architecture.Minor}{(ArchSpecific ? "a" : string.Empty)}";

    /// <summary>
    /// Picks the highest PTX ISA that ILGPU knows and that a driver of the given version accepts.
    /// </summary>
    /// <param name="computeCapability">Device compute capability (major, minor).</param>
    /// <param name="driverVersion">Value of <c>cuDriverGetVersion</c>, e.g. 12090 for CUDA 12.9.</param>
    /// <param name="archSpecific">Request the <c>a</c> suffix (only meaningful on sm_90 and newer).</param>
    /// <exception cref="NotSupportedException">No ILGPU PTX ISA is accepted by that driver.</exception>
    public static PtxTarget ForDevice((int Major, int Minor) computeCapability, int driverVersion, bool archSpecific = false)
    {
        var driver = CudaDriverVersion.FromValue(driverVersion);
        CudaInstructionSet? best = null;
        foreach (var field in typeof(CudaInstructionSet).GetFields(
            System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static))
        {
            if (field.FieldType != typeof(CudaInstructionSet) || field.GetValue(null) is not CudaInstructionSet isa)
            {
                continue;
            }

            CudaDriverVersion required;
            try
            {
                required = CudaDriverVersionUtils.GetMinimumDriverVersion(isa);
            }
            catch (NotSupportedException)
            {
                continue;
            }

            if (required <= driver && (best is null || isa > best.Value))
            {
                best = isa;
            }
        }

        if (best is null)
        {
            throw new NotSupportedException(
                $"CUDA driver version {driverVersion} accepts none of the PTX ISA versions ILGPU 1.5.3 can emit.");
        }

        return new PtxTarget(
            new CudaArchitecture(computeCapability.Major, computeCapability.Minor),
            best.Value,
            archSpecific);
    }
}
