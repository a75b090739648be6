using SageAttn.Kernels.Intrinsics;
using SageAttn.Kernels.Runtime;

namespace SageAttn.Tests.Runtime;

/// <summary>
/// The host checks of the copy engine's tensor maps (before any driver call, so they run without a GPU) and the
/// shared-memory swizzle that the copy emulation writes and the wgmma emulation reads.
/// </summary>
public sealed class TensorCopyLayoutTests
{
    [Theory]
    [InlineData(64)]
    [InlineData(128)]
    public void SwizzlePermutesTheChunksOfEachRowGroup(int rowBytes)
    {
        // Within each 8-row group every byte lands once, inside its own row, and a core-matrix column (one 16-byte chunk
        // of 8 consecutive rows) spreads over 128 / rowBytes · 8 distinct 16-byte bank groups — what the swizzle is for.
        int groupBytes = 8 * rowBytes, baseOffset = 3 * groupBytes;
        var seen = new bool[groupBytes];
        for (int offset = 0; offset < groupBytes; offset++)
        {
            int physical = SharedSwizzle.Apply(baseOffset + offset, rowBytes) - baseOffset;
            Assert.InRange(physical, 0, groupBytes - 1);
            Assert.Equal(offset / rowBytes, physical / rowBytes);
            Assert.False(seen[physical]);
            seen[physical] = true;
        }
        // Chunk 0 of the 8 rows: 128-byte rows use all 8 chunk positions of a 128-byte bank line; 64-byte rows (two rows per
        // line) use 4 chunk positions in each half, 8 distinct (line half, chunk) pairs.
        var slots = Enumerable.Range(0, 8).Select(r => SharedSwizzle.Apply(baseOffset + r * rowBytes, rowBytes) % 128 / 16).Distinct().Count();
        Assert.Equal(8, slots);
    }

    [Fact]
    public void EncodeRejectsBadShapesNamingTheArgument()
    {
        var map = new byte[CudaTensorMap.Bytes];
        var address = new IntPtr(1 << 20);
        Assert.Equal("destination", Assert.Throws<ArgumentException>(() => CudaTensorMap.Encode(new byte[64], address, 64, 128, 128, 64)).ParamName);
        Assert.Equal("address", Assert.Throws<ArgumentException>(() => CudaTensorMap.Encode(map, new IntPtr(8), 64, 128, 128, 64)).ParamName);
        Assert.Equal("rows", Assert.Throws<ArgumentOutOfRangeException>(() => CudaTensorMap.Encode(map, address, 0, 128, 128, 64)).ParamName);
        Assert.Equal("rowBytes", Assert.Throws<ArgumentOutOfRangeException>(() => CudaTensorMap.Encode(map, address, 64, 100, 64, 64)).ParamName);
        Assert.Equal("boxBytes", Assert.Throws<ArgumentOutOfRangeException>(() => CudaTensorMap.Encode(map, address, 64, 128, 32, 64)).ParamName);
        Assert.Equal("boxBytes", Assert.Throws<ArgumentOutOfRangeException>(() => CudaTensorMap.Encode(map, address, 64, 64, 128, 64)).ParamName);
        Assert.Equal("boxRows", Assert.Throws<ArgumentOutOfRangeException>(() => CudaTensorMap.Encode(map, address, 64, 128, 128, 300)).ParamName);
    }
}
