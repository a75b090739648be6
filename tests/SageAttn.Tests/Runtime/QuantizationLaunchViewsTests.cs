using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Tests.Runtime;

/// <summary>
/// The fused quantization launches name a device view for every ArrayView field of their parameter structs, dense and
/// packed alike (the parameter writer throws for a missing one; a dense launch once missed the cu_seqlens views that the
/// packed kernels added, which only a GPU run showed). Runs on the CPU: writing a parameter image touches no device.
/// </summary>
public sealed class QuantizationLaunchViewsTests
{
    private static readonly DeviceTensor Tensor = new((IntPtr)0x10000, 4096, 1, 2, 16, 128, 0, 128, 256);

    private static QuantizedScratch Scratch()
    {
        long next = 0x100000;
        var layout = new VarlenShape(2, 2, 1, 16, 16, 8, 8, 128).Layout(new SageAttentionOptions());
        return QuantizedScratch.Allocate(layout, (_, bytes) => (IntPtr)(next += bytes + 256));
    }

    [Fact]
    public void DenseLaunchesNameEveryView()
    {
        var scratch = Scratch();
        var none = QuantizationLaunchViews.NoSequences(scratch);
        using var args = new KernelArgs();
        args.AddParameter(new KvStatsParams(), QuantizationLaunchViews.Stats(Tensor, Tensor, scratch, none));
        args.AddParameter(new QkvQuantizeParams(), QuantizationLaunchViews.Tiles("", Tensor, Tensor, Tensor, scratch, none, none));
        args.AddParameter(new OneLaunchQuantizeParams(), QuantizationLaunchViews.OneLaunch(Tensor, Tensor, Tensor, scratch));
        Assert.Equal(3, args.Count);
        Assert.Equal(0, none.Length);
        Assert.NotEqual(IntPtr.Zero, none.Pointer);
    }

    [Fact]
    public void PackedLaunchesNameEveryView()
    {
        var scratch = Scratch();
        var cuQ = new DeviceView((IntPtr)0x2000, 3);
        var cuK = new DeviceView((IntPtr)0x3000, 3);
        using var args = new KernelArgs();
        args.AddParameter(new KvStatsParams(), QuantizationLaunchViews.Stats(Tensor, Tensor, scratch, cuK));
        args.AddParameter(new QkvQuantizeParams(), QuantizationLaunchViews.Tiles("", Tensor, Tensor, Tensor, scratch, cuQ, cuK));
        Assert.Equal(2, args.Count);
    }

    [Fact]
    public void AMissingViewIsRejected()
    {
        var scratch = Scratch();
        var views = QuantizationLaunchViews.Tiles("", Tensor, Tensor, Tensor, scratch, default, default);
        views.Remove("KSequences.CuSeqlens");
        using var args = new KernelArgs();
        var e = Assert.Throws<ArgumentException>(() => args.AddParameter(new QkvQuantizeParams(), views));
        Assert.Contains("KSequences.CuSeqlens", e.Message);
    }
}
