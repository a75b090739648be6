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
        "bench-decode" => DecodeBenchCommand.Run(rest),
        "bench-prefill" => PrefillBenchCommand.Run(rest),
        "ptx" => PtxCommand.Run(rest),
        "info" => InfoCommand.Run(rest),
        "run" => RunCommand.Run(rest),
        "sp-bench" => SequenceParallelBenchCommand.Run(rest),
        "e2e" => E2eCommand.Run(rest),
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
          sageattn bench [--quick] [--hd 64,128] [--n 1024,...,32768] [--dtype fp16,bf16] [--causal both|on|off]
                         [--variants all|NAME,...] [--no-torch] [--reps 20] [--warmup 3] [--inputs 3] [--out DIR]
                                                 TOPS and accuracy of torch SDPA and each variant on the GPU
                                                 (end to end, kernel only, quantization); CSV, JSON and PNG in DIR
          sageattn bench-decode [--batch 1,16,64] [--ctx 1024,8192,32768] [--heads 32] [--kv-heads 8] [--dim 128]
                       [--block 64] [--splits S] [--reps 50] [--out DIR]
                                                 paged decode on CUDA tensors: time per call and cache bandwidth
          sageattn bench-prefill [--lengths 512,1024,2048,4096] [--prefix P] [--heads 32] [--kv-heads 8] [--dim 128]
                       [--variants NAME,...] [--reps 20] [--out DIR]
                                                 packed (varlen) causal prefill on CUDA tensors: time per call, TOPS and
                                                 distance from QkInt8PvFp16 per variant
          sageattn ptx --out DIR                 write the attention and quantization kernels' PTX (sm_90) for ptxas -v
          sageattn info                          libtorch source, CUDA devices and their variants, CPU accelerator
          sageattn run --in QKV.safetensors --out OUT.safetensors [--layout HND|NHD] [--causal] [--sm-scale X]
                       [--lse] [--variant QkInt8PvFp8|QkInt8PvFp8Fp16Accum|QkInt8PvFp16|HopperQkInt8PvFp8|HopperQkInt8PvFp16]
                       [--granularity PerBlock|PerWarp|PerThread] [--smooth-k on|off] [--smooth-v] [--cpu]
                                                 attention on tensors q, k, v; writes out (and lse)
          sageattn sp-bench [--n 65536,131072] [--gpus 1,2,4] [--heads 32] [--causal] [--reps 3] [--out DIR]
                                                 long-context attention split across GPUs (ring), speed-up vs one GPU
          sageattn e2e --model qwen3-8b|qwen3-0.6b|qwen2.5-7b|qwen2.5-0.5b|ernie-4.5-0.3b|tiny-qwen3|… [--weights DIR]
                       [--backend sage|sdpa|both] [--prompt N[,N2…]] [--batch B] [--decode T] [--layers L]
                       [--dtype bf16|fp16] [--seed S] [--variant NAME] [--cpu]
                                                 decoder model through the engine loop: prefill ms, attention share,
                                                 decode tok/s, memory, SAGE-vs-SDPA agreement (random weights unless --weights)
        """);
    return 0;
}
