using System.Text.RegularExpressions;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Kernels.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>
/// The PTX pass that turns ILGPU's scalar local slots into registers: what it rewrites, what it must leave alone, and
/// that the attention kernels come out of the compiler with no local memory at all.
/// </summary>
public sealed class PtxLocalPromotionTests : IDisposable
{
    private readonly PtxCompiler _compiler = new();

    public void Dispose() => _compiler.Dispose();

    private const string Header = ".version 8.8\n.target sm_90\n.address_size 64\n\n";

    [Fact]
    public void ScalarSlotsBecomeRegistersWithTheirAccessTypes()
    {
        const string body = """
            .visible .entry Kernel_Run(
            	.param .b32 _x
            )
            {
            	.local .align 4 .b8 __local_depot0[4];
            	.local .align 2 .b8 __local_depot1[2];
            	.reg .b32	%r<4>;
            	.reg .f32	%f<3>;
            	.reg .b16	%rs<3>;
            	.reg .b64	%rd<3>;

            	mov.b64	%rd0, __local_depot0;
            	mov.b64	%rd1, __local_depot1;
            	st.local.f32	[%rd0], 0f3F800000;
            	ld.local.f32	%f1, [%rd0];
            	st.local.b16	[%rd1], %rs1;
            	ld.local.b16	%rs2, [%rd1];
            	ret;
            }
            """;
        var (ptx, promoted, kept) = PtxLocalPromotion.Apply(Header + body);

        Assert.Equal(2, promoted);
        Assert.Equal(0, kept);
        Assert.DoesNotContain("__local_depot", ptx);
        Assert.DoesNotContain(".local", ptx);
        Assert.Contains(".reg .b32 %lp32_<1>;", ptx);
        Assert.Contains(".reg .b16 %lp16_<1>;", ptx);
        Assert.Contains("mov.f32\t%lp32_0, 0f3F800000;", ptx);
        Assert.Contains("mov.f32\t%f1, %lp32_0;", ptx);
        Assert.Contains("mov.b16\t%lp16_0, %rs1;", ptx);
        Assert.Contains("mov.b16\t%rs2, %lp16_0;", ptx);
        Assert.StartsWith(Header, ptx);
        Assert.EndsWith("ret;\n}", ptx);
    }

    [Theory]
    [InlineData("st.local.f32\t[%rd0+4], %f1;")]            // an offset: the slot is an array
    [InlineData("add.s64\t%rd2, %rd0, 4;")]                 // address arithmetic
    [InlineData("st.local.b16\t[%rd0], %rs1;")]             // a partial (2 of 8 bytes) access
    [InlineData("st.global.b64\t[%rd2], %rd0;")]            // the address escapes
    public void SlotsThatAreNotScalarVariablesAreKept(string extraUse)
    {
        string body = $$"""
            .visible .entry Kernel_Run(
            	.param .b32 _x
            )
            {
            	.local .align 8 .b8 __local_depot0[8];
            	.reg .f32	%f<3>;
            	.reg .b16	%rs<3>;
            	.reg .b64	%rd<4>;

            	mov.b64	%rd0, __local_depot0;
            	st.local.b64	[%rd0], %rd3;
            	{{extraUse}}
            	ld.local.b64	%rd1, [%rd0];
            	ret;
            }
            """;
        string input = Header + body;
        var (ptx, promoted, kept) = PtxLocalPromotion.Apply(input);

        Assert.Equal(0, promoted);
        Assert.Equal(1, kept);
        Assert.Equal(input, ptx);
    }

    [Fact]
    public void ALoadIntoARegisterWhoseNameExtendsTheAddressRegisterIsPromoted()
    {
        // %rd82 holds the slot's address and %rd823 receives the load: a name test by substring took the destination
        // for a second use of the address and kept the slot (an 8-byte stack frame in the FP16 wgmma kernel).
        const string body = """
            .visible .entry Kernel_Run(
            	.param .b32 _x
            )
            {
            	.local .align 8 .b8 __local_depot3[8];
            	.reg .b64	%rd<900>;

            	mov.b64	%rd82, __local_depot3;
            	st.local.b64	[%rd82], %rd822;
            	ld.local.b64	%rd823, [%rd82];
            	ret;
            }
            """;
        var (ptx, promoted, kept) = PtxLocalPromotion.Apply(Header + body);

        Assert.Equal(1, promoted);
        Assert.Equal(0, kept);
        Assert.DoesNotContain(".local", ptx);
        Assert.Contains("mov.b64\t%lp64_0, %rd822;", ptx);
        Assert.Contains("mov.b64\t%rd823, %lp64_0;", ptx);
    }

    [Fact]
    public void RegistersAreScopedPerFunction()
    {
        // The same register name in two functions names two different slots.
        const string body = """
            .visible .func f(
            	.param .b32 _x
            )
            {
            	.local .align 4 .b8 __local_depot0[4];
            	.reg .b32	%r<2>;
            	.reg .b64	%rd<2>;
            	mov.b64	%rd0, __local_depot0;
            	st.local.b32	[%rd0], %r1;
            	ret;
            }

            .visible .entry Kernel_Run(
            	.param .b32 _x
            )
            {
            	.local .align 4 .b8 __local_depot0[4];
            	.reg .b32	%r<2>;
            	.reg .b64	%rd<2>;
            	mov.b64	%rd0, __local_depot0;
            	st.local.b32	[%rd0+4], %r1;
            	ret;
            }
            """;
        var (ptx, promoted, kept) = PtxLocalPromotion.Apply(Header + body);

        Assert.Equal(1, promoted);
        Assert.Equal(1, kept);
        Assert.Single(Regex.Matches(ptx, @"__local_depot0\["));
        Assert.Contains("mov.b32\t%lp32_0, %r1;", ptx);
        Assert.Contains("st.local.b32\t[%rd0+4], %r1;", ptx);
    }

    [Theory]
    [InlineData(128, 3, 1)]
    [InlineData(128, 1, 1)]
    [InlineData(128, 3, 2)]
    [InlineData(64, 2, 2)]
    [InlineData(64, 3, 2)]
    public void HopperKernelHasNoLocalMemory(int paddedHeadDim, int warpGroups, int valueBytes)
    {
        // The wgmma kernel's cp.async and wgmma operands went through 294 local slots (a 936-byte stack frame on the H100).
        var kernel = typeof(HopperAttentionKernel).GetMethod(nameof(HopperAttentionKernel.Run))!;
        var ptx = _compiler.Compile(kernel, PtxTarget.Hopper with { ArchSpecific = true }, [paddedHeadDim, warpGroups, valueBytes]).Ptx;

        Assert.DoesNotContain(".local", ptx);
        Assert.Contains("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes", ptx);
        Assert.Contains("mbarrier.try_wait.parity.shared::cta.b64", ptx);
        // The tensor maps travel as a 64-byte aligned kernel parameter under the name the copy intrinsics take its address by.
        Assert.Contains($".param .align 64 .b8 {TensorCopy.ParameterName}[{TensorMapParameter.Bytes}]", ptx);
        Assert.Contains($"cvta.param.u64", ptx);
        Assert.Contains("wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8", ptx);
        // P·V: FP8 (two k32 steps per 64 channels) or FP16 (four k16 steps accumulating into O), never both in one kernel.
        string fp8 = "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3", fp16 = "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16";
        Assert.Equal(valueBytes == 1, ptx.Contains(fp8));
        Assert.Equal(valueBytes == 2, ptx.Contains(fp16));
        // The pipelined loop (FP16 values, three warpgroups) waits for all but the latest group, and its resident
        // registers are declared once, before the first line that names them (ptxas rejects a use before the declaration).
        bool pipelined = HopperAttentionKernel.Pipelined(warpGroups, valueBytes);
        Assert.Equal(pipelined, ptx.Contains("wgmma.wait_group.sync.aligned 1;"));
        Assert.Equal(pipelined ? 1 : 0, Regex.Matches(ptx, Regex.Escape(ResidentPv.DeclarationMarker)).Count);
        if (pipelined)
            Assert.True(ptx.IndexOf(ResidentPv.DeclarationMarker, StringComparison.Ordinal) < ptx.IndexOf("sgo0,", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(128)]
    [InlineData(64)]
    public void WarpSpecializedKernelHasNoLocalMemoryAndMovesRegisters(int paddedHeadDim)
    {
        var kernel = typeof(HopperAttentionKernel).GetMethod(nameof(HopperAttentionKernel.RunWarpSpecialized))!;
        var ptx = _compiler.Compile(kernel, PtxTarget.Hopper with { ArchSpecific = true }, [paddedHeadDim],
            new ILGPU.Runtime.KernelSpecialization(HopperAttentionKernel.SpecializedThreads, 1)).Ptx;

        Assert.DoesNotContain(".local", ptx);
        Assert.Contains($"setmaxnreg.dec.sync.aligned.u32 {RegisterBudget.Producer};", ptx);
        Assert.Contains($"setmaxnreg.inc.sync.aligned.u32 {RegisterBudget.Consumer};", ptx);
        // ptxas ignores setmaxnreg (C7507) while the emulation's calls are reachable: no conditional branch may follow, as
        // the next instruction, a move of true into its predicate (ILGPU reuses predicate registers, so only the adjacent
        // definition tells).
        string[] instructions = ptx.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        for (int i = 1; i < instructions.Length; i++)
        {
            var branch = Regex.Match(instructions[i], @"^@(%p\d+) bra");
            Assert.False(branch.Success && Regex.IsMatch(instructions[i - 1], $@"^mov\.pred\s+{branch.Groups[1].Value}, 1;$"),
                $"an always-taken conditional branch is left: {instructions[i - 1]} {instructions[i]}");
        }
        // The pipelined consumers: Q·Kᵀ of the next block retires while P·V of this one is in flight, on resident
        // registers declared once, before their first use.
        Assert.Contains("wgmma.wait_group.sync.aligned 1;", ptx);
        Assert.Single(Regex.Matches(ptx, Regex.Escape(ResidentFp8Pv.DeclarationMarker)));
        Assert.True(ptx.IndexOf(ResidentFp8Pv.DeclarationMarker, StringComparison.Ordinal) < ptx.IndexOf("sga0,", StringComparison.Ordinal));
    }

    [Fact]
    public void MmaSyncKernelHasNoLocalMemory()
    {
        var kernel = typeof(AttentionKernel).GetMethod(nameof(AttentionKernel.Run))!;
        var ptx = _compiler.Compile(kernel, PtxTarget.Hopper, [(int)AttentionVariant.QkInt8PvFp8, 128]).Ptx;

        Assert.DoesNotContain(".local", ptx);
    }
}
