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
        "bench-driver" => DriverBenchCommand.Run(rest),
        "ptx" => PtxCommand.Run(rest),
        "info" => InfoCommand.Run(rest),
        "run" => RunCommand.Run(rest),
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
          sageattn bench [--out DIR] [--n 1024,4096,16384] [--reps 20] [--no-torch]
                                                 TOPS of each variant on the GPU (kernel only and with quantization)
          sageattn bench-driver [--n 4096,16384] [--reps 20] [--out DIR]   time every variant through the driver path (incl. the Hopper wgmma kernel)
          sageattn ptx --out DIR                 write the attention kernels' PTX (sm_90) for ptxas -v
          sageattn info                          libtorch source, CUDA devices and their variants, CPU accelerator
          sageattn run --in QKV.safetensors --out OUT.safetensors [--layout HND|NHD] [--causal] [--sm-scale X]
                       [--lse] [--variant QkInt8PvFp8|QkInt8PvFp8Fp16Accum|QkInt8PvFp16]
                       [--granularity PerBlock|PerWarp|PerThread] [--smooth-k on|off] [--smooth-v] [--cpu]
                                                 attention on tensors q, k, v; writes out (and lse)
        """);
    return 0;
}
