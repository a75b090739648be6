namespace SageAttn.Quantization;

/// <summary>Storage type of the attention inputs and outputs (held as raw 16-bit patterns).</summary>
public enum TensorElementType
{
    /// <summary>IEEE binary16.</summary>
    Float16 = 0,
    /// <summary>bfloat16: the upper half of a binary32.</summary>
    BFloat16 = 1,
}

/// <summary>How many INT8 scales Q and K get. All three write the per-thread scale layout the kernel reads.</summary>
public enum QuantGranularity
{
    /// <summary>One scale per Q tile (64 rows) and per K block (64 keys).</summary>
    PerBlock = 0,
    /// <summary>One scale per warp slice (16 query rows) and per K block (64 keys).</summary>
    PerWarp = 1,
    /// <summary>8 scales per warp slice (rows g, g + 8) and 4 per K block (keys 8j + 2t, 8j + 2t + 1): each lane dequantizes with one multiply.</summary>
    PerThread = 2,
}

/// <summary>How V is stored for the P·V product.</summary>
public enum VFormat
{
    /// <summary>FP8 e4m3 scaled to 448 per channel (v2: FP32 accumulation).</summary>
    Fp8ForFp32Accum = 0,
    /// <summary>FP8 e4m3 scaled to 2.25 per channel (v2++: FP16 accumulation overflow guard).</summary>
    Fp8ForFp16Accum = 1,
    /// <summary>FP16, transposed (FP16 P·V for sm80/86 and the accurate mode).</summary>
    Fp16 = 2,
}
