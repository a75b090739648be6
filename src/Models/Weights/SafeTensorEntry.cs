using static TorchSharp.torch;

namespace SageAttn.Models.Weights;

/// <summary>One tensor's entry in a .safetensors header: dtype, shape and byte range after the header.</summary>
public sealed record SafeTensorEntry(string Name, ScalarType DType, long[] Shape, long Begin, long End)
{
    /// <summary>Bytes of data (End − Begin).</summary>
    public long ByteLength => End - Begin;
}
