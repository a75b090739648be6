namespace SageAttn.Backend; internal static class Placeholder {}
