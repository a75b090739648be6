using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace SageAttn.Kernels.Intrinsics;

/// <summary>
/// Tensor-memory-accelerator copies (<c>cp.async.bulk.tensor</c>, sm_90): one thread asks the copy engine for a box
/// of a 2-D byte tensor described by a tensor map (built on the host, see <c>CudaTensorMap</c>), and the bytes land
/// in shared memory asynchronously, counted against an <see cref="Mbarrier"/>. A box here is <c>rows</c> whole rows
/// of 64 or 128 bytes, written swizzled (<see cref="SharedSwizzle"/>): the K-major layout swizzled wgmma descriptors read.
/// </summary>
/// <remarks>
/// On ILGPU's CPU accelerator the issuing thread copies the box at once from the view (the emulation), so CI runs the
/// kernel's copy plan; <see cref="Mbarrier.WaitBlock"/> orders it before the box is read.
/// </remarks>
public static class TensorCopy
{
    /// <summary>Bytes of one tensor map (CUtensorMap).</summary>
    public const int MapBytes = 128;

    /// <summary>
    /// The PTX name of a kernel's <see cref="TensorMapParameter"/> parameter: the compiler renames ILGPU's parameter to it
    /// (and aligns it to 64 bytes, as the copy engine requires) so that <see cref="MapAddress"/> can name it.
    /// </summary>
    public const string ParameterName = "sage_tensor_maps";

    /// <summary>
    /// The generic address of map <paramref name="index"/> of the kernel's <see cref="TensorMapParameter"/> (a
    /// <c>__grid_constant__</c> parameter: the driver copies it at launch, no device buffer or host copy per call).
    /// 0 on the CPU, whose emulation reads the views.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long MapAddress(int index)
    {
        if (!CudaAsm.IsSupported)
            return 0;
        CudaAsm.Emit("{ .reg .b64 a; mov.u64 a, " + ParameterName + "; cvta.param.u64 %0, a; }", out long address);
        return address + index * MapBytes;
    }

    /// <summary>
    /// Copies bytes x..x + <paramref name="rowBytes"/> − 1 of rows y..y + <paramref name="rows"/> − 1 of the tensor of
    /// <paramref name="map"/> to the swizzled tile at word <paramref name="sharedWord"/> of dynamic shared memory,
    /// completing rows · rowBytes bytes on the barrier at <paramref name="barrier"/>.
    /// </summary>
    /// <param name="shared">All dynamic shared memory as words (word 0 = <see cref="SharedWindow.SharedAddress"/>(0)); the tile must be 8-row aligned.</param>
    /// <param name="sharedWord">Destination word.</param>
    /// <param name="barrier">Shared address of the <see cref="Mbarrier"/> the bytes count against.</param>
    /// <param name="map">Generic address of the tensor map (<see cref="MapAddress"/>); unused on the CPU.</param>
    /// <param name="x">First byte of each row.</param>
    /// <param name="y">First row.</param>
    /// <param name="global">The tensor as words, read by the CPU emulation.</param>
    /// <param name="rowWords">Words per row of <paramref name="global"/> (the map's row stride), for the emulation.</param>
    /// <param name="rowBytes">The box width, 64 or 128 bytes, and the swizzle the map was built with.</param>
    /// <param name="rows">Rows of the box, as the map was built.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadTile(ArrayView<uint> shared, int sharedWord, uint barrier, long map, int x, int y,
        ArrayView<uint> global, int rowWords, int rowBytes, int rows)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];",
                SharedWindow.SharedAddress(sharedWord * sizeof(uint)), map, x, y, barrier);
            return;
        }
        int tileByte = sharedWord * sizeof(uint);
        for (int r = 0; r < rows; r++)
        {
            long source = (long)(y + r) * rowWords + x / 4;
            for (int chunk = 0; chunk < rowBytes / 16; chunk++)
            {
                int word = SharedSwizzle.Apply(tileByte + r * rowBytes + 16 * chunk, rowBytes) / sizeof(uint);
                for (int i = 0; i < 4; i++)
                    shared[word + i] = global[source + 4 * chunk + i];
            }
        }
    }
}

/// <summary>
/// Three tensor maps (<see cref="TensorCopy.MapBytes"/> each) passed by value as one kernel parameter, which must be named
/// <c>tensorMaps</c> in the kernel's C# signature (the compiler finds it by that name). Kernels never read the fields:
/// the copy engine reads the parameter through <see cref="TensorCopy.MapAddress"/>. The host fills it from
/// <c>CudaTensorMap.Encode</c>.
/// </summary>
public struct TensorMapParameter
{
    /// <summary>Bytes of the parameter.</summary>
    public const int Bytes = 3 * TensorCopy.MapBytes;

    // Written by the host as raw bytes and read by the copy engine, never by C#.
#pragma warning disable CS0169, CS0649
    private Map128 _map0, _map1, _map2;

    /// <summary>128 opaque bytes.</summary>
    private struct Map128
    {
        public long A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15;
    }
#pragma warning restore CS0169, CS0649
}
