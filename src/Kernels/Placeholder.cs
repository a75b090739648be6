namespace SageAttn.Kernels; internal static class Placeholder {}
