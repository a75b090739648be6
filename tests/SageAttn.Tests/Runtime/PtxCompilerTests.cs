using System.Text.RegularExpressions;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>Offline PTX generation; needs no GPU.</summary>
public sealed class PtxCompilerTests : IDisposable
{
    private readonly PtxCompiler _compiler = new();

    public void Dispose() => _compiler.Dispose();

    private static string[] ParamLines(string ptx, string entry)
    {
        int start = ptx.IndexOf(".entry " + entry + "(", StringComparison.Ordinal);
        Assert.True(start >= 0, "entry not found");
        int end = ptx.IndexOf(')', start);
        return ptx[start..end].Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(".param", StringComparison.Ordinal)).ToArray();
    }

    [Fact]
    public void CompilesPlainKernelWithRaisedTarget()
    {
        var result = _compiler.Compile(typeof(TestKernels).GetMethod(nameof(TestKernels.Axpb))!, PtxTarget.Hopper);

        Assert.Equal("Kernel_Axpb", result.EntryName);
        Assert.Contains(".entry Kernel_Axpb(", result.Ptx);
        Assert.Matches(new Regex(@"^\.target sm_90\s*$", RegexOptions.Multiline), result.Ptx);
        Assert.Contains(".version 8.5", result.Ptx);
    }

    [Fact]
    public void ArrayViewIsSixteenBytesAndScalarsAreFourBytes()
    {
        var result = _compiler.Compile(typeof(TestKernels).GetMethod(nameof(TestKernels.Axpb))!, PtxTarget.Hopper);
        var lines = ParamLines(result.Ptx, result.EntryName);

        Assert.Equal(5, lines.Length);
        Assert.Matches(@"^\.param \.align 8 \.b8 _x_\d+\[16\],$", lines[0]);
        Assert.Matches(@"^\.param \.align 8 \.b8 _y_\d+\[16\],$", lines[1]);
        Assert.Matches(@"^\.param \.f32 _a_\d+,$", lines[2]);
        Assert.Matches(@"^\.param \.f32 _b_\d+,$", lines[3]);
        Assert.Matches(@"^\.param \.b32 _n_\d+$", lines[4]);
    }

    [Fact]
    public void StructParameterIsOneByteArrayWithNaturalLayout()
    {
        var result = _compiler.Compile(typeof(TestKernels).GetMethod(nameof(TestKernels.WithStruct))!, PtxTarget.Hopper);
        var lines = ParamLines(result.Ptx, result.EntryName);

        // MixedParams: int@0, long@8, float@16, ArrayView@24 (ptr) / @32 (length) => 40 bytes, align 8.
        Assert.Equal(40, System.Runtime.CompilerServices.Unsafe.SizeOf<MixedParams>());
        Assert.Equal(2, lines.Length);
        Assert.Matches(@"^\.param \.align 8 \.b8 _p_\d+\[40\],$", lines[0]);
        var name = Regex.Match(lines[0], @"(_p_\d+)").Groups[1].Value;
        Assert.Contains($"ld.param.b32\t%r1, [{name}];", result.Ptx);
        Assert.Contains($"[{name}+8]", result.Ptx);
        Assert.Contains($"[{name}+16]", result.Ptx);
        Assert.Contains($"[{name}+24]", result.Ptx);
        Assert.Contains($"[{name}+32]", result.Ptx);
    }

    [Fact]
    public void DynamicSharedMemoryAddsNoHiddenParameter()
    {
        var result = _compiler.Compile(typeof(TestKernels).GetMethod(nameof(TestKernels.ReverseThroughShared))!, PtxTarget.Hopper);
        var lines = ParamLines(result.Ptx, result.EntryName);

        Assert.Equal(2, lines.Length);
        Assert.Contains(".extern .shared", result.Ptx);
        Assert.Contains("%dynamic_smem_size", result.Ptx);
    }

    [Fact]
    public void ArchSpecificTargetIsPatched()
    {
        var target = PtxTarget.Hopper with { ArchSpecific = true };
        var result = _compiler.Compile(typeof(TestKernels).GetMethod(nameof(TestKernels.Axpb))!, target);

        Assert.Matches(new Regex(@"^\.target sm_90a\s*$", RegexOptions.Multiline), result.Ptx);
        Assert.Equal("sm_90a", target.TargetName);
    }

    [Fact]
    public void SpecializedValueIsFoldedAndKeepsItsSlot()
    {
        var method = typeof(TestKernels).GetMethod(nameof(TestKernels.ScaleIndex))!;
        var seven = _compiler.Compile(method, PtxTarget.Hopper, new object[] { 7 });
        var eleven = _compiler.Compile(method, PtxTarget.Hopper, new object[] { SpecializedValue.New(11) });

        Assert.Equal("Kernel_ScaleIndex", seven.EntryName);
        Assert.Matches(@"mul\.lo\.s32\s+%r\d+, %r\d+, 7;", seven.Ptx);
        Assert.Matches(@"mul\.lo\.s32\s+%r\d+, %r\d+, 11;", eleven.Ptx);
        Assert.NotEqual(seven.CacheKey, eleven.CacheKey);

        // The slot stays: view, factor (.b32, unused), n.
        var lines = ParamLines(seven.Ptx, seven.EntryName);
        Assert.Equal(3, lines.Length);
        Assert.Matches(@"^\.param \.b32 _factor_\d+,$", lines[1]);
    }

    [Fact]
    public void RepeatedCompileHitsTheCache()
    {
        var method = typeof(TestKernels).GetMethod(nameof(TestKernels.Axpb))!;
        var first = _compiler.Compile(method, PtxTarget.Hopper);
        var second = _compiler.Compile(method, PtxTarget.Hopper);

        Assert.Same(first, second);
        Assert.Equal(1, _compiler.CachedCount);
    }

    /// <summary>
    /// Plain int values take the cheap cache key: each value, bound and target still gets its own module, and the boxed
    /// <see cref="SpecializedValue{T}"/> form of the same value (full key) finds the same module.
    /// </summary>
    [Fact]
    public void IntSpecializedValuesHitTheCacheByValueBoundsAndTarget()
    {
        var method = typeof(TestKernels).GetMethod(nameof(TestKernels.ScaleIndex))!;
        var seven = _compiler.Compile(method, PtxTarget.Hopper, new object[] { 7 });
        var nine = _compiler.Compile(method, PtxTarget.Hopper, new object[] { 9 });
        var bounded = _compiler.Compile(method, PtxTarget.Hopper, new object[] { 7 }, new KernelSpecialization(128, 2));
        var archSpecific = _compiler.Compile(method, PtxTarget.Hopper with { ArchSpecific = true }, new object[] { 7 });

        Assert.Same(seven, _compiler.Compile(method, PtxTarget.Hopper, new object[] { 7 }));
        Assert.Same(seven, _compiler.Compile(method, PtxTarget.Hopper, new object[] { SpecializedValue.New(7) }));
        Assert.Same(bounded, _compiler.Compile(method, PtxTarget.Hopper, new object[] { 7 }, new KernelSpecialization(128, 2)));
        Assert.Matches(@"mul\.lo\.s32\s+%r\d+, %r\d+, 9;", nine.Ptx);
        Assert.Equal(4, new[] { seven, nine, bounded, archSpecific }.Select(c => c.CacheKey).Distinct().Count());
        Assert.Equal(4, _compiler.CachedCount);
    }

    [Fact]
    public void ThrowsOnWrongSpecializedValueCount()
    {
        var method = typeof(TestKernels).GetMethod(nameof(TestKernels.ScaleIndex))!;
        Assert.Throws<ArgumentException>(() => _compiler.Compile(method, PtxTarget.Hopper));
        Assert.Throws<ArgumentException>(() => _compiler.Compile(method, PtxTarget.Hopper, new object[] { 1.5f }));
    }

    [Fact]
    public void ThrowsOnNullKernel() =>
        Assert.Throws<ArgumentNullException>(() => _compiler.Compile(null!, PtxTarget.Hopper));

    [Fact]
    public void ForDevicePicksHighestIsaTheDriverAccepts()
    {
        var cuda129 = PtxTarget.ForDevice((9, 0), 12090);
        var cuda125 = PtxTarget.ForDevice((9, 0), 12050);

        Assert.Equal(CudaInstructionSet.ISA_88, cuda129.InstructionSet);
        Assert.Equal(CudaInstructionSet.ISA_85, cuda125.InstructionSet);
        Assert.Equal(CudaArchitecture.SM_90, cuda129.Architecture);
    }

    [Fact]
    public void PatchTargetRequiresATargetLine() =>
        Assert.Throws<ArgumentException>(() => PtxCompiler.PatchTarget(".version 8.5\n", "sm_90a"));

    [Fact]
    public void TensorMapParameterIsRenamedAndAligned()
    {
        const string ptx = """
            .visible .entry Kernel_Run(
            	.param .align 8 .b8 _p_17[304],
            	.param .align 8 .b8 _tensorMaps_18[384],
            	.param .b32 _paddedHeadDim_19
            )
            {
            	ld.param.b64	%rd31, [_tensorMaps_18+8];
            	ld.param.b64	%rd32, [_tensorMaps_180];
            }
            """;

        var patched = PtxCompiler.NameTensorMapParameter(ptx);

        Assert.Contains(".param .align 64 .b8 sage_tensor_maps[384],", patched);
        Assert.Contains("[sage_tensor_maps+8]", patched);
        Assert.DoesNotContain("_tensorMaps_18[", patched);
        // Only the whole name is replaced, and other parameters are left alone.
        Assert.Contains("[_tensorMaps_180]", patched);
        Assert.Contains(".param .align 8 .b8 _p_17[304],", patched);
        // A kernel without a 384-byte tensorMaps parameter is returned unchanged.
        var other = ptx.Replace("[384]", "[128]", StringComparison.Ordinal);
        Assert.Equal(other, PtxCompiler.NameTensorMapParameter(other));
    }
}
