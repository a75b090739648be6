namespace SageAttn.Quantization; internal static class Placeholder {}
