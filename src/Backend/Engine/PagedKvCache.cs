using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// The paged KV cache of a model: one key and one value tensor per layer, each
/// [MaxNumBlocks, Hkv, BlockSize, D] on one device in one dtype, and the <see cref="BlockAllocator"/> that
/// decides which blocks each request owns (the same blocks in every layer).
/// </summary>
/// <remarks>
/// Inside a layer's cache, the row of (block b, head h, offset o) in the flat [MaxNumBlocks·Hkv·BlockSize, D] view is
/// (b·Hkv + h)·BlockSize + o: <see cref="RowIndices"/> turns token slots into those rows, so writing a step's K/V is
/// one <c>index_copy_</c> and reading a request's keys one <c>index_select</c> per layer.
/// The tensors are zero-filled so a block read before it is written gives zeros, not stale NaNs.
/// </remarks>
public sealed class PagedKvCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    /// <summary>A cache for <paramref name="backend"/>'s config: its layers, shape and dtype, <paramref name="maxNumBlocks"/> blocks.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="backend"/> or <paramref name="device"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="maxNumBlocks"/> is not positive.</exception>
    public PagedKvCache(AttentionBackend backend, int maxNumBlocks, Device device)
        : this(ShapeOf(backend, maxNumBlocks), backend.Config.NumLayers, device, backend.Config.DType)
    {
    }

    /// <summary>A cache of <paramref name="numLayers"/> layers of <paramref name="shape"/> on <paramref name="device"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="shape"/> or <paramref name="device"/> is null.</exception>
    /// <exception cref="ArgumentException">A count is not positive or <paramref name="dtype"/> is not Float16/BFloat16.</exception>
    public PagedKvCache(KvCacheShape shape, int numLayers, Device device, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(device);
        if (numLayers <= 0)
            throw new ArgumentException($"numLayers must be positive, got {numLayers}.", nameof(numLayers));
        if (shape.MaxNumBlocks <= 0 || shape.KvHeads <= 0 || shape.BlockSize <= 0 || shape.HeadDim <= 0)
            throw new ArgumentException($"every dimension of the cache shape must be positive, got {shape}.", nameof(shape));
        if (dtype != ScalarType.Float16 && dtype != ScalarType.BFloat16)
            throw new ArgumentException($"dtype must be Float16 or BFloat16, got {dtype}.", nameof(dtype));
        Shape = shape;
        NumLayers = numLayers;
        DType = dtype;
        Allocator = new BlockAllocator(shape.MaxNumBlocks, shape.BlockSize);
        _keys = new Tensor[numLayers];
        _values = new Tensor[numLayers];
        for (int layer = 0; layer < numLayers; layer++)
        {
            // Detached: the cache outlives any dispose scope the engine happens to build it in.
            _keys[layer] = torch.zeros(shape.KeyShape, dtype, device).DetachFromDisposeScope();
            _values[layer] = torch.zeros(shape.ValueShape, dtype, device).DetachFromDisposeScope();
        }

        // The tensors' own device: "cuda" as asked becomes "cuda:0", so comparisons with other tensors' devices are exact.
        Device = _keys[0].device;
    }

    /// <summary>Each layer's cache shape.</summary>
    public KvCacheShape Shape { get; }

    /// <summary>Layers (key/value tensor pairs).</summary>
    public int NumLayers { get; }

    /// <summary>Device of every cache tensor (with its index, e.g. cuda:0).</summary>
    public Device Device { get; }

    /// <summary>dtype of every cache tensor.</summary>
    public ScalarType DType { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize => Shape.BlockSize;

    /// <summary>Which blocks each request owns.</summary>
    public BlockAllocator Allocator { get; }

    /// <summary>The key cache of <paramref name="layer"/>, [MaxNumBlocks, Hkv, BlockSize, D] (the cache's own tensor: do not dispose).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layer"/> is not in 0 .. NumLayers − 1.</exception>
    public Tensor Key(int layer) => _keys[CheckLayer(layer)];

    /// <summary>The value cache of <paramref name="layer"/>, shaped like <see cref="Key"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layer"/> is not in 0 .. NumLayers − 1.</exception>
    public Tensor Value(int layer) => _values[CheckLayer(layer)];

    /// <summary>Grows the request's blocks to hold <paramref name="tokens"/> tokens (see <see cref="BlockAllocator.Reserve"/>).</summary>
    /// <exception cref="InvalidOperationException">The pool is exhausted.</exception>
    public IReadOnlyList<int> Reserve(int requestId, int tokens) => Allocator.Reserve(requestId, tokens);

    /// <summary>Returns the request's blocks to the pool.</summary>
    public void Free(int requestId) => Allocator.Free(requestId);

    /// <summary>The request's block ids in token order.</summary>
    /// <exception cref="ArgumentException">The request owns no blocks.</exception>
    public IReadOnlyList<int> BlockTable(int requestId) => Allocator.BlockTable(requestId);

    /// <summary>
    /// The token slot (block · BlockSize + offset) of each position of a request whose block table is
    /// <paramref name="blockTable"/> — vLLM's slot mapping.
    /// </summary>
    public long Slot(IReadOnlyList<int> blockTable, int position) =>
        (long)blockTable[position / BlockSize] * BlockSize + position % BlockSize;

    /// <summary>
    /// Rows of the flat [MaxNumBlocks·Hkv·BlockSize, D] view for tokens at <paramref name="slots"/>, head-minor:
    /// element t·Hkv + h is the row of slot t's head h. Host arrays; the caller moves them to the device once per step.
    /// </summary>
    public long[] RowIndices(IReadOnlyList<long> slots)
    {
        int kvHeads = Shape.KvHeads, blockSize = BlockSize;
        var rows = new long[slots.Count * kvHeads];
        for (int t = 0; t < slots.Count; t++)
        {
            long block = slots[t] / blockSize, offset = slots[t] % blockSize;
            for (int h = 0; h < kvHeads; h++)
                rows[t * kvHeads + h] = (block * kvHeads + h) * blockSize + offset;
        }

        return rows;
    }

    /// <summary>
    /// Writes the keys and values of a step's tokens into <paramref name="layer"/>'s cache: token t of
    /// <paramref name="keys"/> / <paramref name="values"/> ([T, Hkv, D], the cache's dtype and device) goes to the rows
    /// <paramref name="rows"/>[t·Hkv .. t·Hkv + Hkv − 1] (from <see cref="RowIndices"/>, int64 on the device).
    /// </summary>
    /// <remarks>No validation beyond what torch checks: the backends call it with tensors they shaped themselves.</remarks>
    public void Write(int layer, Tensor keys, Tensor values, Tensor rows)
    {
        using var scope = torch.NewDisposeScope();
        int d = Shape.HeadDim;
        Key(layer).view(-1, d).index_copy_(0, rows, keys.reshape(-1, d));
        Value(layer).view(-1, d).index_copy_(0, rows, values.reshape(-1, d));
    }

    /// <summary>
    /// Reads tokens back from <paramref name="cache"/> (a layer's key or value tensor): the result is
    /// [rows.Count / Hkv, Hkv, D], a new tensor, token-major as the step's packed qkv.
    /// </summary>
    public Tensor Gather(Tensor cache, Tensor rows)
    {
        using var scope = torch.NewDisposeScope();
        int d = Shape.HeadDim;
        var gathered = cache.view(-1, d).index_select(0, rows).view(-1, Shape.KvHeads, d);
        return scope.MoveToOuter(gathered);
    }

    /// <summary>Releases every layer's tensors.</summary>
    public void Dispose()
    {
        foreach (var t in _keys) t?.Dispose();
        foreach (var t in _values) t?.Dispose();
    }

    private int CheckLayer(int layer) =>
        (uint)layer < (uint)NumLayers
            ? layer
            : throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer must be in 0 .. {NumLayers - 1}.");

    private static KvCacheShape ShapeOf(AttentionBackend backend, int maxNumBlocks)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (maxNumBlocks <= 0)
            throw new ArgumentException($"maxNumBlocks must be positive, got {maxNumBlocks}.", nameof(maxNumBlocks));
        return backend.GetKvCacheShape(maxNumBlocks);
    }
}
