using ILGPU.Runtime;
using SageAttn.Kernels.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>Driver API loading and launching. GPU tests skip here (no CUDA device on CI).</summary>
public sealed class CudaLaunchTests
{
    private static void RequireGpu()
    {
        if (!CudaDriver.TryInitialize(out var reason) || CudaDriver.DeviceCount() == 0)
        {
            Assert.Skip("no CUDA device: " + reason);
        }

        CudaDriver.EnsureContext(0);
    }

    [Fact]
    public void MissingDriverGivesTypedException()
    {
        if (CudaDriver.IsAvailable)
        {
            Assert.Skip("libcuda.so.1 is present; this test covers machines without it");
        }

        var e = Assert.Throws<CudaUnavailableException>(CudaDriver.Initialize);
        Assert.Contains("libcuda.so.1", e.Message);
        Assert.False(CudaDriver.TryInitialize(out var reason));
        Assert.Contains("libcuda.so.1", reason);
    }

    [Fact]
    public void CheckNamesTheOperation()
    {
        var e = Assert.Throws<CudaException>(() => CudaDriver.Check(1, "launching Kernel_X (grid 1x1x1)"));
        Assert.Equal(1, e.Result);
        Assert.Contains("launching Kernel_X (grid 1x1x1)", e.Message);
        Assert.Contains(CudaDriver.IsAvailable ? "CUDA_ERROR_INVALID_VALUE" : "CUDA_ERROR_1", e.ErrorName);
    }

    [Fact]
    [Trait("gpu", "true")]
    public void AxpbWritesDeviceMemory()
    {
        RequireGpu();
        const int n = 1000;
        var x = Enumerable.Range(0, n).Select(i => (float)i).ToArray();
        IntPtr dx = CudaDriver.Allocate(n * sizeof(float));
        IntPtr dy = CudaDriver.Allocate(n * sizeof(float));
        try
        {
            CudaDriver.CopyToDevice<float>(dx, x);
            using var launcher = new CudaKernelLauncher();
            var kernel = launcher.Load(typeof(TestKernels).GetMethod(nameof(TestKernels.Axpb))!);
            using var args = new KernelArgs().AddView(dx, n).AddView(dy, n).Add(2f).Add(0.5f).Add(n);
            launcher.Launch(kernel, LaunchDimensions.Linear((n + 127) / 128, 128), args, IntPtr.Zero);
            CudaDriver.SynchronizeStream(IntPtr.Zero);

            var y = new float[n];
            CudaDriver.CopyToHost<float>(y, dy);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(2f * i + 0.5f, y[i]);
            }
        }
        finally
        {
            CudaDriver.Free(dx);
            CudaDriver.Free(dy);
        }
    }

    [Fact]
    [Trait("gpu", "true")]
    public void SpecializedKernelUsesBakedValue()
    {
        RequireGpu();
        const int n = 256;
        IntPtr dy = CudaDriver.Allocate(n * sizeof(float));
        try
        {
            using var launcher = new CudaKernelLauncher();
            var kernel = launcher.Load(typeof(TestKernels).GetMethod(nameof(TestKernels.ScaleIndex))!, new object[] { 3 });

            // The specialized slot is still a .b32 parameter; pass a different value to prove it is ignored.
            using var args = new KernelArgs().AddView(dy, n).Add(SpecializedValue.New(100)).Add(n);
            launcher.Launch(kernel, LaunchDimensions.Linear(2, 128), args, IntPtr.Zero);
            CudaDriver.SynchronizeStream(IntPtr.Zero);

            var y = new float[n];
            CudaDriver.CopyToHost<float>(y, dy);
            Assert.Equal(3f * 255, y[255]);
        }
        finally
        {
            CudaDriver.Free(dy);
        }
    }

    [Fact]
    [Trait("gpu", "true")]
    public void DynamicSharedAbove48KbIsRaised()
    {
        RequireGpu();
        const int n = 1024;
        var data = Enumerable.Range(0, n).Select(i => (float)i).ToArray();
        IntPtr dy = CudaDriver.Allocate(n * sizeof(float));
        try
        {
            CudaDriver.CopyToDevice<float>(dy, data);
            using var launcher = new CudaKernelLauncher();
            var kernel = launcher.Load(typeof(TestKernels).GetMethod(nameof(TestKernels.ReverseThroughShared))!);
            using var args = new KernelArgs().AddView(dy, n).Add(n);

            // 64 KB > the 48 KB default: the launcher must raise the function attribute first.
            launcher.Launch(kernel, LaunchDimensions.Linear(1, n, 64 * 1024), args, IntPtr.Zero);
            CudaDriver.SynchronizeStream(IntPtr.Zero);

            var y = new float[n];
            CudaDriver.CopyToHost<float>(y, dy);
            Assert.Equal(n - 1f, y[0]);
            Assert.Equal(0f, y[n - 1]);
        }
        finally
        {
            CudaDriver.Free(dy);
        }
    }
}
