using System.Buffers.Binary;
using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Host;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Tests.Runtime;

/// <summary>A struct nesting <see cref="MixedParams"/> between fields of other sizes.</summary>
public struct NestedParams
{
    public short Tag;
    public MixedParams Inner;
    public float After;
    public ArrayView<int> Tail;
}

/// <summary>An enum leaf (written as its underlying int).</summary>
public enum ParamMode : uint
{
    Off = 0,
    High = 0xF000_0001,
}

/// <summary>Every scalar leaf kind, signed and unsigned, an enum and a specialized value.</summary>
public struct ScalarKinds
{
    public sbyte Small;
    public byte Byte;
    public short Short;
    public ushort UShort;
    public int Int;
    public uint UInt;
    public long Long;
    public ulong ULong;
    public float Float;
    public double Double;
    public ParamMode Mode;
    public SpecializedValue<int> Dp;
}

/// <summary>A field type with no defined device layout.</summary>
public struct WithBool
{
    public int Count;
    public bool Flag;
}

/// <summary>The parameter writer against hand-computed offsets and ILGPU's own PTX.</summary>
public sealed class KernelParamWriterTests : IDisposable
{
    private readonly PtxCompiler _compiler = new();

    public void Dispose() => _compiler.Dispose();

    [Fact]
    public void MixedStructMatchesNaturalLayout()
    {
        var layout = KernelParamLayout.Of(typeof(MixedParams));
        Assert.Equal(40, layout.Size);
        Assert.Equal(8, layout.Alignment);
        Assert.Equal(new[] { ("Count", 0), ("Offset", 8), ("Scale", 16), ("Source", 24) },
            layout.Fields.Select(f => (f.Path, f.Offset)).ToArray());
    }

    [Fact]
    public void NestedStructIsWrittenAtItsOffsets()
    {
        var value = new NestedParams { Tag = -2, Inner = new MixedParams { Count = 7, Offset = -5_000_000_000L, Scale = 1.5f }, After = -0.25f };
        var bytes = KernelParamWriter.Write(value, new Dictionary<string, DeviceView>
        {
            ["Inner.Source"] = new(new IntPtr(0x7000_1234_5670L), 99),
            ["Tail"] = new((IntPtr)0x10, 3),
        });

        // short@0, Inner (align 8)@8: Count@8, Offset@16, Scale@24, Source@32..48, After@48, Tail (align 8)@56..72.
        Assert.Equal(72, bytes.Length);
        Assert.Equal(-2, BinaryPrimitives.ReadInt16LittleEndian(bytes));
        Assert.Equal(7, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
        Assert.Equal(-5_000_000_000L, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16)));
        Assert.Equal(1.5f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(24)));
        Assert.Equal(0x7000_1234_5670L, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(32)));
        Assert.Equal(99L, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(40)));
        Assert.Equal(-0.25f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(48)));
        Assert.Equal(0x10L, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(56)));
        Assert.Equal(3L, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(64)));
    }

    [Fact]
    public void EveryScalarKindKeepsItsBits()
    {
        var value = new ScalarKinds
        {
            Small = -3, Byte = 250, Short = -30000, UShort = 60000, Int = -123456789, UInt = 0xFFFF_FFF0, Long = long.MinValue + 7,
            ULong = ulong.MaxValue - 9, Float = -1.25e-20f, Double = Math.PI, Mode = ParamMode.High, Dp = SpecializedValue.New(128),
        };
        var bytes = KernelParamWriter.Write(value);

        // sbyte@0, byte@1, short@2, ushort@4, int@8, uint@12, long@16, ulong@24, float@32, double@40, enum@48, SpecializedValue@52.
        Assert.Equal(56, bytes.Length);
        Assert.Equal(-3, (sbyte)bytes[0]);
        Assert.Equal(250, bytes[1]);
        Assert.Equal(-30000, BinaryPrimitives.ReadInt16LittleEndian(bytes.AsSpan(2)));
        Assert.Equal(60000, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(4)));
        Assert.Equal(-123456789, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
        Assert.Equal(0xFFFF_FFF0u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(12)));
        Assert.Equal(long.MinValue + 7, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16)));
        Assert.Equal(ulong.MaxValue - 9, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(24)));
        Assert.Equal(-1.25e-20f, BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(32)));
        Assert.Equal(Math.PI, BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(40)));
        Assert.Equal(0xF000_0001u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(48)));
        Assert.Equal(128, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(52)));
        // A second value of the same type goes through the same compiled writer.
        Assert.Equal(-7, BinaryPrimitives.ReadInt32LittleEndian(KernelParamWriter.Write(value with { Int = -7 }).AsSpan(8)));
    }

    [Fact]
    public void MissingViewIsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelParamWriter.Write(new MixedParams()));
        Assert.Contains("Source", e.Message);
    }

    [Fact]
    public void UnknownViewPathIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelParamWriter.Write(new MixedParams(),
            new Dictionary<string, DeviceView> { ["Source"] = new(1, 1), ["Sourse"] = new(1, 1) }));
        Assert.Contains("Sourse", e.Message);
    }

    [Fact]
    public void UnsupportedFieldTypeFailsLoudly()
    {
        var e = Assert.Throws<NotSupportedException>(() => KernelParamLayout.Of(typeof(WithBool)));
        Assert.Contains("Flag", e.Message);
    }

    [Fact]
    public void KernelArgsTakesTheRawImage()
    {
        using var args = new KernelArgs();
        args.Add(3).AddParameter(new MixedParams { Count = 4 }, new Dictionary<string, DeviceView> { ["Source"] = new(8, 2) });
        Assert.Equal(2, args.Count);
        Assert.Equal(40, args.GetBytes(1).Length);
        Assert.Equal(4, BinaryPrimitives.ReadInt32LittleEndian(args.GetBytes(1)));
    }

    public static TheoryData<string> RealKernels => new() { "ChannelStats", "QuantizeInt8", "QuantizeV", "LseCorrection", "Attention" };

    [Theory]
    [MemberData(nameof(RealKernels))]
    public void ComputedSizesMatchIlgpuParamDeclarations(string name)
    {
        var (method, specialized) = name switch
        {
            "ChannelStats" => (typeof(ChannelStatsKernel).GetMethod(nameof(ChannelStatsKernel.Run))!, Array.Empty<object>()),
            "QuantizeInt8" => (typeof(QuantizeInt8Kernel).GetMethod(nameof(QuantizeInt8Kernel.Run))!, Array.Empty<object>()),
            "QuantizeV" => (typeof(QuantizeVKernel).GetMethod(nameof(QuantizeVKernel.Run))!, Array.Empty<object>()),
            "LseCorrection" => (typeof(LseCorrectionKernel).GetMethod(nameof(LseCorrectionKernel.Run))!, Array.Empty<object>()),
            _ => (typeof(AttentionKernel).GetMethod(nameof(AttentionKernel.Run))!, new object[] { (int)AttentionVariant.QkInt8PvFp8, 64 }),
        };
        var ptx = _compiler.Compile(method, CudaSageAttention.TargetFor((9, 0), 12080), specialized);
        var declared = ParamSizes(ptx.Ptx, ptx.EntryName);
        var computed = method.GetParameters().Select(p => KernelParamLayout.Of(p.ParameterType))
            .Select(l => (l.Size, l.Alignment)).ToArray();
        Assert.Equal(computed, declared);
    }

    [Fact]
    public void TargetForDriver128HasIsa87AndCapsAtSm90()
    {
        var hopper = CudaSageAttention.TargetFor((9, 0), 12080);
        Assert.Equal(CudaArchitecture.SM_90, hopper.Architecture);
        Assert.True(hopper.InstructionSet >= CudaInstructionSet.ISA_87, $"PTX ISA {hopper.InstructionSet} < 8.7");
        Assert.Equal(CudaArchitecture.SM_90, CudaSageAttention.TargetFor((12, 0), 12090).Architecture);
        Assert.Equal(new CudaArchitecture(8, 6), CudaSageAttention.TargetFor((8, 6), 12080).Architecture);
    }

    private static (int Size, int Alignment)[] ParamSizes(string ptx, string entry)
    {
        int start = ptx.IndexOf(".entry " + entry + "(", StringComparison.Ordinal);
        Assert.True(start >= 0, "entry not found");
        int end = ptx.IndexOf(')', start);
        return ptx[start..end].Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(".param", StringComparison.Ordinal))
            .Select(l =>
            {
                var array = Regex.Match(l, @"^\.param \.align (\d+) \.b8 \S+\[(\d+)\]");
                if (array.Success)
                    return (int.Parse(array.Groups[2].Value), int.Parse(array.Groups[1].Value));
                var scalar = Regex.Match(l, @"^\.param \.[bfsu](\d+) ");
                Assert.True(scalar.Success, $"unparsed parameter line: {l}");
                int bytes = int.Parse(scalar.Groups[1].Value) / 8;
                return (bytes, bytes);
            }).ToArray();
    }
}
