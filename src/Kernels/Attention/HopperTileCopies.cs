using System.Runtime.CompilerServices;
using ILGPU;
using SageAttn.Kernels.Intrinsics;
using SageAttn.Quantization;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// One thread's share of the cp.async copies of a key block of the wgmma kernel (K rows and Vᵀ columns into their
/// K-major stage tiles), with the per-chunk offsets worked out once per kernel rather than once per block.
/// </summary>
/// <remarks>
/// A tile is 4 · Dp chunks of 16 bytes; chunk i goes to byte 16 i of its stage and thread j of the block copies chunks
/// j, j + T, … below 4 · Dp (T = 128 · warpgroups threads): 1 to 4 of them, the last round ragged for 3 warpgroups. K chunk i is row
/// (i / 8) / (Dp / 16) · 8 + i % 8, column chunk (i / 8) % (Dp / 16); Vᵀ chunk i is channel (i / 32) · 8 + i % 8,
/// key chunk (i / 8) % 4. A warp reads 64 contiguous bytes of each of 8 rows and writes 512 contiguous bytes.
/// </remarks>
public struct HopperTileCopies
{
    private readonly long _kHeadWord, _vHeadWord;
    private readonly int _kBlockWords, _rounds, _threads, _tid, _chunks;
    private readonly int _k0, _k1, _k2, _k3;
    private readonly long _v0, _v1, _v2, _v3;

    /// <summary>The plan of thread <paramref name="tid"/> of a block of <paramref name="warpGroups"/> warpgroups.</summary>
    /// <param name="p">Sizes (NkPad) of the quantized K and Vᵀ.</param>
    /// <param name="kvHeadIndex">batch · Hkv + kv head.</param>
    /// <param name="dp">64 or 128.</param>
    /// <param name="tid">Thread index in the block.</param>
    /// <param name="warpGroups">1 to 3.</param>
    public HopperTileCopies(in AttentionParams p, long kvHeadIndex, int dp, int tid, int warpGroups)
    {
        int rowWords = dp / 4, vRowWords = p.NkPad / 4;
        _kHeadWord = kvHeadIndex * p.NkPad * rowWords;
        _vHeadWord = kvHeadIndex * dp * (long)vRowWords;
        _kBlockWords = SageConstants.KBlockKeys * rowWords;
        _threads = HopperAttentionKernel.Threads * warpGroups;
        _chunks = 4 * dp;
        _rounds = (_chunks + _threads - 1) / _threads;
        _tid = tid;
        _k0 = RowChunkWord(tid, dp);
        _k1 = RowChunkWord(tid + _threads, dp);
        _k2 = RowChunkWord(tid + 2 * _threads, dp);
        _k3 = RowChunkWord(tid + 3 * _threads, dp);
        _v0 = ColumnChunkWord(tid, vRowWords);
        _v1 = ColumnChunkWord(tid + _threads, vRowWords);
        _v2 = ColumnChunkWord(tid + 2 * _threads, vRowWords);
        _v3 = ColumnChunkWord(tid + 3 * _threads, vRowWords);
    }

    /// <summary>Word offset, in a row-major [rows, Dp] INT8 tensor, of K-major chunk <paramref name="chunk"/> of a 64-row tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int RowChunkWord(int chunk, int dp)
    {
        int chunksPerRow = dp / 16, group = chunk >> 3;
        int row = group / chunksPerRow * 8 + (chunk & 7), column = group % chunksPerRow;
        return row * (dp / 4) + 4 * column;
    }

    /// <summary>Word offset, in a Vᵀ [Dp, NkPad] FP8 tensor, of chunk <paramref name="chunk"/> of a 64-key block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long ColumnChunkWord(int chunk, int vRowWords)
    {
        int channel = (chunk >> 5) * 8 + (chunk & 7), column = (chunk >> 3) & 3;
        return (long)channel * vRowWords + 4 * column;
    }

    /// <summary>Issues this thread's copies of key block <paramref name="kb"/> into the K tile at word <paramref name="kWord"/> and the Vᵀ tile at <paramref name="vWord"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Issue(ArrayView<uint> shared, in AttentionParams p, long kAddress, long vAddress, int kb, int kWord, int vWord)
    {
        long kBlock = _kHeadWord + (long)kb * _kBlockWords;
        long vBlock = _vHeadWord + kb * (SageConstants.KBlockKeys / 4);
        int chunkWord = 4 * _tid, step = 4 * _threads;
        if (_tid < _chunks)
        {
            AsyncCopy.Copy16(shared, kWord + chunkWord, p.K, kAddress, kBlock + _k0);
            AsyncCopy.Copy16(shared, vWord + chunkWord, p.V, vAddress, vBlock + _v0);
        }
        if (_rounds > 1 && _tid + _threads < _chunks)
        {
            AsyncCopy.Copy16(shared, kWord + chunkWord + step, p.K, kAddress, kBlock + _k1);
            AsyncCopy.Copy16(shared, vWord + chunkWord + step, p.V, vAddress, vBlock + _v1);
        }
        if (_rounds > 2)  // only one warpgroup at Dp = 128: four full rounds
        {
            AsyncCopy.Copy16(shared, kWord + chunkWord + 2 * step, p.K, kAddress, kBlock + _k2);
            AsyncCopy.Copy16(shared, vWord + chunkWord + 2 * step, p.V, vAddress, vBlock + _v2);
            AsyncCopy.Copy16(shared, kWord + chunkWord + 3 * step, p.K, kAddress, kBlock + _k3);
            AsyncCopy.Copy16(shared, vWord + chunkWord + 3 * step, p.V, vAddress, vBlock + _v3);
        }
    }
}
