using SageAttn.Kernels.Attention;

namespace SageAttn.Tests.Attention;

/// <summary>When the epilogue may store O's channel pairs as 32-bit words (<see cref="AttentionParams.PairedOutput"/>).</summary>
public sealed class PairedOutputTests
{
    [Theory]
    [InlineData(true, 4L * 1024 * 128, 1024L * 128, 128L, 1)] // contiguous HND
    [InlineData(true, 1024L * 32 * 128, 128L, 32L * 128, 1)] // NHD
    [InlineData(true, 0L, 96L, 32L * 96, 1)] // packed (no batch stride)
    [InlineData(false, 4L * 1024 * 128, 1024L * 128, 128L, 0)] // O starts mid-word
    [InlineData(true, 4L * 1024 * 129, 1024L * 129, 129L, 0)] // odd token stride: row starts alternate halves of a word
    [InlineData(true, 3L, 1024L * 128, 128L, 0)] // odd batch stride
    [InlineData(true, 4L * 1024 * 128, 1L, 128L, 0)] // odd head stride
    public void PairsOnlyWhenEveryRowStartsOnAWord(bool wordAligned, long strideBatch, long strideHead, long strideToken, int expected) =>
        Assert.Equal(expected, AttentionParams.PairedOutputFor(wordAligned, strideBatch, strideHead, strideToken));
}
