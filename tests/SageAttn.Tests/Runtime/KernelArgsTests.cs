using SageAttn.Kernels.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>Byte images of kernel parameters; needs no GPU.</summary>
public sealed class KernelArgsTests
{
    [Fact]
    public void ViewIsPointerThenInt64Length()
    {
        using var args = new KernelArgs().AddView(new IntPtr(0x1122334455667788), 1000);
        var bytes = args.GetBytes(0);

        Assert.Equal(16, bytes.Length);
        Assert.Equal(0x1122334455667788, BitConverter.ToInt64(bytes, 0));
        Assert.Equal(1000L, BitConverter.ToInt64(bytes, 8));
    }

    [Fact]
    public void ScalarsAndStructsKeepTheirSizes()
    {
        using var args = new KernelArgs()
            .Add(2.5f)
            .Add(-3)
            .Add(new MixedParamsArgs { Count = 7, Offset = 9, Scale = 0.5f, Source = new DeviceView(new IntPtr(0x1000), 5) });

        Assert.Equal(3, args.Count);
        Assert.Equal(2.5f, BitConverter.ToSingle(args.GetBytes(0)));
        Assert.Equal(-3, BitConverter.ToInt32(args.GetBytes(1)));
        var mixed = args.GetBytes(2);
        Assert.Equal(40, mixed.Length);
        Assert.Equal(7, BitConverter.ToInt32(mixed, 0));
        Assert.Equal(9L, BitConverter.ToInt64(mixed, 8));
        Assert.Equal(0.5f, BitConverter.ToSingle(mixed, 16));
        Assert.Equal(0x1000L, BitConverter.ToInt64(mixed, 24));
        Assert.Equal(5L, BitConverter.ToInt64(mixed, 32));
    }

    [Fact]
    public void NegativeViewLengthThrows()
    {
        using var args = new KernelArgs();
        Assert.Throws<ArgumentOutOfRangeException>(() => args.AddView(IntPtr.Zero, -1));
    }

    [Fact]
    public void LaunchDimensionsRejectZeroBlocks() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => LaunchDimensions.Linear(0, 128).Validate());
}
