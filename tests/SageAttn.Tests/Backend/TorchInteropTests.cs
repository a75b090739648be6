using System.Runtime.InteropServices;
using SageAttn.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Backend;

/// <summary>TorchSharp CPU interop; runs on CI through TorchSharp-cpu (patched libLibTorchSharp.so).</summary>
public sealed class TorchInteropTests
{
    [Fact]
    public void TorchSharpCpuLoads()
    {
        using var sum = torch.ones(3).sum();
        Assert.Equal(3f, sum.item<float>());
    }

    [Fact]
    public void DataPointerAddressesTheTensorStorage()
    {
        using var t = torch.zeros(4, dtype: ScalarType.Float32);
        var pointer = TorchInterop.DataPointer(t);

        Marshal.Copy(new[] { 1.5f, -2f }, 0, pointer + sizeof(float), 2);

        Assert.Equal(new[] { 0f, 1.5f, -2f, 0f }, t.data<float>().ToArray());
    }

    [Fact]
    public void SlicedTensorPointerIncludesStorageOffset()
    {
        using var t = torch.arange(12, dtype: ScalarType.Float32).reshape(3, 4);
        using var row = t[1];
        using var column = t[.., 2];

        var basePointer = TorchInterop.DataPointer(t);
        Assert.Equal(basePointer + 4 * sizeof(float), TorchInterop.DataPointer(row));
        Assert.Equal(basePointer + 2 * sizeof(float), TorchInterop.DataPointer(column));
        Assert.Equal(4f, Marshal.PtrToStructure<float>(TorchInterop.DataPointer(row)));
    }

    [Fact]
    public void DescribeReportsShapeStridesAndDevice()
    {
        using var t = torch.zeros(2, 3, 5, dtype: ScalarType.BFloat16);
        using var transposed = t.transpose(1, 2);
        var info = TorchInterop.Describe(transposed);

        Assert.Equal(30, info.ElementCount);
        Assert.Equal(ScalarType.BFloat16, info.ElementType);
        Assert.Equal(DeviceType.CPU, info.DeviceType);
        Assert.Equal(-1, info.DeviceIndex);
        Assert.Equal(new long[] { 2, 5, 3 }, info.Sizes);
        Assert.Equal(new long[] { 15, 1, 5 }, info.Strides);
        Assert.False(info.IsContiguous);
        Assert.True(TorchInterop.Describe(t).IsContiguous);
    }

    [Fact]
    public void StreamIsDefaultWithoutCuda()
    {
        if (torch.cuda.is_available())
        {
            Assert.Skip("CUDA libtorch present; this test covers CPU-only libtorch");
        }

        Assert.Equal(IntPtr.Zero, TorchInterop.CurrentCudaStream(0));
    }

    [Fact]
    public void DataPointerRejectsNull() =>
        Assert.Throws<ArgumentNullException>(() => TorchInterop.DataPointer(null!));

    [Fact]
    public void LoaderRejectsMissingFolder() =>
        Assert.Throws<DirectoryNotFoundException>(() => LibTorchLoader.EnsureLoaded("/nonexistent/sageattn/libtorch"));
}
