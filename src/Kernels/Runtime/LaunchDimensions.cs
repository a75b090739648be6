namespace SageAttn.Kernels.Runtime;

/// <summary>Grid and block shape plus dynamic shared memory of one kernel launch.</summary>
/// <param name="GridX">Blocks in x (at least 1).</param>
/// <param name="GridY">Blocks in y (at least 1).</param>
/// <param name="GridZ">Blocks in z (at least 1).</param>
/// <param name="BlockX">Threads per block in x (at least 1).</param>
/// <param name="BlockY">Threads per block in y (at least 1).</param>
/// <param name="BlockZ">Threads per block in z (at least 1).</param>
/// <param name="DynamicSharedBytes">Bytes of dynamic shared memory (<c>SharedMemory.GetDynamic</c>).</param>
public readonly record struct LaunchDimensions(
    int GridX, int GridY, int GridZ,
    int BlockX, int BlockY, int BlockZ,
    int DynamicSharedBytes = 0)
{
    /// <summary>A 1-D launch.</summary>
    public static LaunchDimensions Linear(int grid, int block, int dynamicSharedBytes = 0) =>
        new(grid, 1, 1, block, 1, 1, dynamicSharedBytes);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a dimension is not positive or the shared size is negative.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(GridX);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(GridY);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(GridZ);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BlockX);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BlockY);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BlockZ);
        ArgumentOutOfRangeException.ThrowIfNegative(DynamicSharedBytes);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"grid {GridX}x{GridY}x{GridZ}, block {BlockX}x{BlockY}x{BlockZ}, dynamic shared {DynamicSharedBytes} B";
}
