using SageAttn.Cli;

// sageattn: the command-line entry point. Each command lives in its own file.
var command = args.Length > 0 ? args[0] : "help";
var rest = args.Skip(1).ToArray();
try
{
    return command switch
    {
        "demo" => DemoCommand.Run(rest),
        "bench" => BenchCommand.Run(rest),
        "ptx" => PtxCommand.Run(rest),
        _ => Usage(),
    };
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"sageattn {command}: {e.Message}");
    return 2;
}

static int Usage()
{
    Console.WriteLine("""
        sageattn — SageAttention (INT8 Q·Kᵀ, FP8/FP16 P·V) kernels for .NET

          sageattn demo [--cpu]                 small attention problem on the best accelerator: kernel, accuracy, time
          sageattn bench [--out DIR] [--n 1024,4096,16384] [--reps 20]
                                                 TOPS of each variant on the GPU (kernel only and with quantization)
          sageattn ptx --out DIR                 write the attention kernels' PTX (sm_90) for ptxas -v
        """);
    return 0;
}
