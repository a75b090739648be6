using SageAttn.Kernels.Runtime;
using SageAttn.Quantization.Kernels;

namespace SageAttn.Kernels.Host;

/// <summary>
/// The device views of the fused quantization launches' parameter structs (<see cref="KvStatsParams"/>,
/// <see cref="QkvQuantizeParams"/>, <see cref="OneLaunchQuantizeParams"/>), built in one place for dense and packed
/// launches: the parameter writer rejects a struct with a view left out, and a dense launch still has to name the
/// cu_seqlens views its kernel never reads.
/// </summary>
public static class QuantizationLaunchViews
{
    /// <summary>The valid, empty view a dense launch passes for cu_seqlens (never read).</summary>
    public static DeviceView NoSequences(QuantizedScratch scratch)
    {
        ArgumentNullException.ThrowIfNull(scratch);
        return scratch.VMean with { Length = 0 };
    }

    /// <summary>The views of a <see cref="KvStatsParams"/>.</summary>
    public static Dictionary<string, DeviceView> Stats(in DeviceTensor k, in DeviceTensor v, QuantizedScratch scratch, DeviceView cuSeqlensK)
    {
        ArgumentNullException.ThrowIfNull(scratch);
        return new()
        {
            ["K.Data"] = new(k.Pointer, k.ElementCount), ["V.Data"] = new(v.Pointer, v.ElementCount),
            ["KStats"] = scratch.KStats, ["VStats"] = scratch.VStats, ["Sequences.CuSeqlens"] = cuSeqlensK,
        };
    }

    /// <summary>The views of a <see cref="QkvQuantizeParams"/> whose field paths start with <paramref name="prefix"/>.</summary>
    public static Dictionary<string, DeviceView> Tiles(string prefix, in DeviceTensor q, in DeviceTensor k, in DeviceTensor v,
        QuantizedScratch scratch, DeviceView cuSeqlensQ, DeviceView cuSeqlensK)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(scratch);
        return new()
        {
            [prefix + "Q.Data"] = new(q.Pointer, q.ElementCount), [prefix + "K.Data"] = new(k.Pointer, k.ElementCount),
            [prefix + "V.Data"] = new(v.Pointer, v.ElementCount), [prefix + "QOut"] = scratch.Q, [prefix + "KOut"] = scratch.K,
            [prefix + "QScales"] = scratch.QScale, [prefix + "KScales"] = scratch.KScale, [prefix + "VOut"] = scratch.V,
            [prefix + "VScales"] = scratch.VScale, [prefix + "VMeans"] = scratch.VMean, [prefix + "KStats"] = scratch.KStats,
            [prefix + "VStats"] = scratch.VStats, [prefix + "QSequences.CuSeqlens"] = cuSeqlensQ,
            [prefix + "KSequences.CuSeqlens"] = cuSeqlensK,
        };
    }

    /// <summary>The views of a <see cref="OneLaunchQuantizeParams"/> (dense only).</summary>
    public static Dictionary<string, DeviceView> OneLaunch(in DeviceTensor q, in DeviceTensor k, in DeviceTensor v, QuantizedScratch scratch)
    {
        var views = Tiles("Tiles.", q, k, v, scratch, NoSequences(scratch), NoSequences(scratch));
        views["Coordination"] = scratch.Coordination;
        return views;
    }
}
