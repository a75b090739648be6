using System.Text.RegularExpressions;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Tests.Runtime;

/// <summary>The packed (varlen) kernels compile to PTX for sm_90 offline (no GPU): the driver path's first step.</summary>
public sealed class VarlenPtxTests : IDisposable
{
    private readonly PtxCompiler _compiler = new();

    public void Dispose() => _compiler.Dispose();

    [Fact]
    public void VarlenAttentionKernelCompilesWithTensorCoreMma()
    {
        var result = _compiler.Compile(typeof(VarlenAttentionKernel).GetMethod(nameof(VarlenAttentionKernel.Run))!, PtxTarget.Hopper,
            [(int)AttentionVariant.QkInt8PvFp8, 128]);

        Assert.Contains(".entry " + result.EntryName + "(", result.Ptx);
        Assert.Matches(new Regex(@"mma\.sync\.aligned\.m16n8k32\.row\.col\.s32\.s8\.s8\.s32"), result.Ptx);
        Assert.Matches(new Regex(@"mma\.sync\.aligned\.m16n8k32\.row\.col\.f32\.e4m3\.e4m3\.f32"), result.Ptx);
    }

    [Fact]
    public void QuantizersWithSequencesCompile()
    {
        foreach (var kernel in new[] { typeof(ChannelStatsKernel), typeof(QuantizeInt8Kernel), typeof(QuantizeVKernel), typeof(LseCorrectionKernel) })
        {
            var result = _compiler.Compile(kernel.GetMethod("Run")!, PtxTarget.Hopper);
            Assert.Contains(".entry " + result.EntryName + "(", result.Ptx);
        }
    }
}
