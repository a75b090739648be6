using System.Runtime.CompilerServices;
using ILGPU;

namespace SageAttn.Kernels.Attention;

/// <summary>
/// One thread's share of the next K and V tiles, held in registers: the global loads for block kb + 1 are
/// issued before block kb is computed and land in shared memory after it, so their latency hides behind
/// the tensor-core work (software pipelining without extra shared memory).
/// </summary>
/// <remarks>
/// 128 threads copy 16-byte chunks: a K tile is 64 keys × Dp bytes (Dp/32 chunks per thread), a V tile is
/// Dp channels × 64 FP8 or FP16 keys (Dp/32 or Dp/16 chunks per thread). Chunk r of a thread is chunk
/// tid + 128·r of the tile, so consecutive threads read consecutive 16 bytes. The counts are compile-time
/// constants in the specialized kernel; the guarded steps vanish where unused. Chunks per row are powers of two (4 or
/// 8), and a chunk's place in its row is a mask, not <c>%</c>: ILGPU emits PTX <c>rem</c> for it, which ptxas compiles
/// as a general division (a reciprocal on the special-function unit) even by a constant.
/// </remarks>
public struct TilePrefetch
{
    public Vec4 K0, K1, K2, K3;
    public Vec4 V0, V1, V2, V3, V4, V5, V6, V7;

    /// <summary>Where the tiles of one (batch, kv head) live and how they are laid out.</summary>
    public struct Layout
    {
        public ArrayView<Vec4> KGlobal, VGlobal, KShared, VShared;
        public long KHeadChunk, VHeadChunk;
        public int KChunksPerRow, VChunksPerRow, KStrideChunks, VStrideChunks, VGlobalChunksPerRow, KChunks, VChunks;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Load(in Layout l, int kb, int tid)
    {
        long kBase = l.KHeadChunk + (long)kb * SageAttn.Quantization.SageConstants.KBlockKeys * l.KChunksPerRow;
        K0 = LoadK(l, kBase, tid);
        if (l.KChunks > 1) K1 = LoadK(l, kBase, tid + 128);
        if (l.KChunks > 2) { K2 = LoadK(l, kBase, tid + 256); K3 = LoadK(l, kBase, tid + 384); }
        int vColumn = kb * l.VChunksPerRow;
        V0 = LoadV(l, vColumn, tid);
        if (l.VChunks > 1) V1 = LoadV(l, vColumn, tid + 128);
        if (l.VChunks > 2) { V2 = LoadV(l, vColumn, tid + 256); V3 = LoadV(l, vColumn, tid + 384); }
        if (l.VChunks > 4) { V4 = LoadV(l, vColumn, tid + 512); V5 = LoadV(l, vColumn, tid + 640); V6 = LoadV(l, vColumn, tid + 768); V7 = LoadV(l, vColumn, tid + 896); }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Store(in Layout l, int tid)
    {
        StoreK(l, tid, K0);
        if (l.KChunks > 1) StoreK(l, tid + 128, K1);
        if (l.KChunks > 2) { StoreK(l, tid + 256, K2); StoreK(l, tid + 384, K3); }
        StoreV(l, tid, V0);
        if (l.VChunks > 1) StoreV(l, tid + 128, V1);
        if (l.VChunks > 2) { StoreV(l, tid + 256, V2); StoreV(l, tid + 384, V3); }
        if (l.VChunks > 4) { StoreV(l, tid + 512, V4); StoreV(l, tid + 640, V5); StoreV(l, tid + 768, V6); StoreV(l, tid + 896, V7); }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vec4 LoadK(in Layout l, long kBase, int chunk) => l.KGlobal[kBase + chunk];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vec4 LoadV(in Layout l, int vColumn, int chunk)
    {
        int c = chunk / l.VChunksPerRow, part = chunk & (l.VChunksPerRow - 1);
        return l.VGlobal[l.VHeadChunk + (long)c * l.VGlobalChunksPerRow + vColumn + part];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreK(in Layout l, int chunk, Vec4 value)
    {
        int key = chunk / l.KChunksPerRow, part = chunk & (l.KChunksPerRow - 1);
        l.KShared[key * l.KStrideChunks + part] = value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreV(in Layout l, int chunk, Vec4 value)
    {
        int c = chunk / l.VChunksPerRow, part = chunk & (l.VChunksPerRow - 1);
        l.VShared[c * l.VStrideChunks + part] = value;
    }
}
