using ILGPU;
using ILGPU.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>A struct parameter mixing 4- and 8-byte fields and a view, to read ILGPU's struct .param layout.</summary>
public struct MixedParams
{
    public int Count;
    public long Offset;
    public float Scale;
    public ArrayView<float> Source;
}

/// <summary>Tiny explicitly grouped kernels used by the runtime tests.</summary>
public static class TestKernels
{
    /// <summary>y[i] = a * x[i] + b for i &lt; n.</summary>
    public static void Axpb(ArrayView<float> x, ArrayView<float> y, float a, float b, int n)
    {
        int i = Grid.GlobalIndex.X;
        if (i < n)
        {
            y[i] = a * x[i] + b;
        }
    }

    /// <summary>y[i] = i * factor, with factor baked in at compile time.</summary>
    public static void ScaleIndex(ArrayView<float> y, SpecializedValue<int> factor, int n)
    {
        int i = Grid.GlobalIndex.X;
        if (i < n)
        {
            y[i] = i * factor.Value;
        }
    }

    /// <summary>Reads every field of a struct parameter.</summary>
    public static void WithStruct(MixedParams p, ArrayView<float> y)
    {
        int i = Grid.GlobalIndex.X;
        if (i < p.Count)
        {
            y[i] = p.Scale * p.Source[i] + p.Offset;
        }
    }

    /// <summary>Reverses a block through dynamic shared memory.</summary>
    public static void ReverseThroughShared(ArrayView<float> y, int n)
    {
        var shared = SharedMemory.GetDynamic<float>();
        int i = Group.IdxX;
        shared[i] = y[i];
        Group.Barrier();
        if (i < n)
        {
            y[i] = shared[n - 1 - i];
        }
    }
}

/// <summary>Host mirror of <see cref="MixedParams"/>: views become <see cref="SageAttn.Kernels.Runtime.DeviceView"/>.</summary>
public struct MixedParamsArgs
{
    public int Count;
    public long Offset;
    public float Scale;
    public SageAttn.Kernels.Runtime.DeviceView Source;
}
