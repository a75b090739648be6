using System.Collections.Concurrent;
using SageAttn.Kernels.Attention;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Kernels.Runtime;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Host;

/// <summary>The tensor maps of the wgmma kernel's copies (its <see cref="TensorMapParameter"/>).</summary>
public sealed partial class CudaSageAttention
{
    /// <summary>Most encoded parameters kept; the cache is emptied when it would grow past this.</summary>
    private const int MaxCachedTensorMaps = 64;

    /// <summary>
    /// Encoded parameters by (scratch addresses, shape): a map is a pure function of them, and torch's caching allocator
    /// hands the same scratch addresses to call after call, so steady-state calls skip the three driver encodes.
    /// </summary>
    private static readonly ConcurrentDictionary<TensorMapKey, byte[]> TensorMaps = new();

    private readonly record struct TensorMapKey(IntPtr Q, IntPtr K, IntPtr V, int Batch, int HeadsQ, int HeadsKv, int NqPad, int NkPad, int PaddedHeadDim,
        int ValueBytes);

    /// <summary>
    /// The wgmma kernel's tensor maps (<see cref="HopperAttentionKernel.Map"/> order) of the quantized Q, K and Vᵀ in
    /// <paramref name="scratch"/>, encoded on the host (nothing is enqueued) or taken from the cache. Vᵀ has
    /// <paramref name="valueBytes"/> bytes per element (1: FP8, 2: FP16), so its boxes are 64 or 128 bytes wide.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor has more rows than the kernel's 32-bit copy coordinates reach.</exception>
    private static byte[] TensorMapsFor(AttentionShape shape, QuantizedScratch scratch, int valueBytes) =>
        TensorMapsFor(shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.NqPad, shape.NkPad, shape.PaddedHeadDim, scratch, valueBytes);

    /// <summary>The same for packed sequences: tensors of batch 1 with <see cref="VarlenShape.QRows"/> and <see cref="VarlenShape.KRows"/> padded rows per head.</summary>
    private static byte[] TensorMapsFor(VarlenShape shape, QuantizedScratch scratch, int valueBytes) =>
        TensorMapsFor(1, shape.HeadsQ, shape.HeadsKv, shape.QRows, shape.KRows, shape.PaddedHeadDim, scratch, valueBytes);

    private static byte[] TensorMapsFor(int batch, int headsQ, int headsKv, int nqPad, int nkPad, int dp, QuantizedScratch scratch, int valueBytes)
    {
        var key = new TensorMapKey(scratch.Q.Pointer, scratch.K.Pointer, scratch.V.Pointer, batch, headsQ, headsKv, nqPad, nkPad, dp, valueBytes);
        if (TensorMaps.TryGetValue(key, out var cached))
            return cached;

        long qRows = (long)batch * headsQ * nqPad, kRows = (long)batch * headsKv * nkPad;
        long vRows = (long)batch * headsKv * dp;
        if (Math.Max(qRows, kRows) > int.MaxValue)
            throw new ArgumentException(
                $"the wgmma kernel ({AttentionVariant.HopperQkInt8PvFp8}, {AttentionVariant.HopperQkInt8PvFp16}) addresses rows with 32-bit coordinates; B · H · padded tokens = {Math.Max(qRows, kRows)} is too many.", "q");
        var bytes = new byte[TensorMapParameter.Bytes];
        CudaTensorMap.Encode(bytes.AsSpan((int)HopperAttentionKernel.Map.Q * CudaTensorMap.Bytes), scratch.Q.Pointer, qRows, dp, dp, SageConstants.QTileRows);
        CudaTensorMap.Encode(bytes.AsSpan((int)HopperAttentionKernel.Map.K * CudaTensorMap.Bytes), scratch.K.Pointer, kRows, dp, dp, SageConstants.KBlockKeys);
        CudaTensorMap.Encode(bytes.AsSpan((int)HopperAttentionKernel.Map.V * CudaTensorMap.Bytes), scratch.V.Pointer, vRows,
            (long)nkPad * valueBytes, SageConstants.KBlockKeys * valueBytes, dp);
        if (TensorMaps.Count >= MaxCachedTensorMaps)
            TensorMaps.Clear();
        TensorMaps[key] = bytes;
        return bytes;
    }
}
