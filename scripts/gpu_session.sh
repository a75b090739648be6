#!/usr/bin/env bash
# GPU-machine session after `../shared/gpu/bundle src/Cli/SageAttn.Cli.csproj tests/SageAttn.Tests/SageAttn.Tests.csproj`.
#   bash scripts/gpu_session.sh tests   CUDA tests (kernels, quantizers, varlen, decode, merge, engine, models, runtime,
#                                       TorchSharp API), info and the ptxas report          -> gpu.txt gpu_tests.xml gpu_tests.log
#   bash scripts/gpu_session.sh perf    benchmark (torch SDPA and every Sage variant in one process on one card), paged
#                                       decode, sequence-parallel split -> perf.txt bench.log bench.csv bench.json bench_tops.png
#   bash scripts/gpu_session.sh e2e     end-to-end model prefill/decode, both backends -> e2e.txt
#   bash scripts/gpu_session.sh profile ncu of the wgmma kernel (hd128 4K: scheduler, warp states, instruction mix and
#                                       per-instruction execution counts) and its SASS -> profile.txt ncu_source.csv.gz sass.txt.gz
# At most 8 files come back from the machine, so the small reports share gpu.txt / perf.txt.
set -o pipefail
mode=${1:-tests}
if [ "$mode" = tests ]; then
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
  timeout 420 bash .gpu/run.sh SageAttn.Tests -trait gpu=true -result-xml $OUT/gpu_tests.xml 2>&1 | tee $OUT/gpu_tests.log | grep -E "FAIL|Total" | head -40
  timeout 60 bash .gpu/run.sh sageattn info >> $OUT/gpu.txt 2>&1
  bash .gpu/run.sh sageattn ptx --out /tmp/ptx > /dev/null && for f in /tmp/ptx/*.ptx; do
    arch=sm_90; grep -q "sm_90a" "$f" && arch=sm_90a
    echo "$f ($arch)"; ptxas -arch=$arch -v "$f" -o /dev/null 2>&1 | grep -E "registers|spill|stack"; done >> $OUT/gpu.txt
elif [ "$mode" = profile ]; then
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/profile.txt
  # Every ILGPU entry is named Kernel_Run; an end-to-end call launches the statistics, the Q/K/V quantization, then the
  # attention kernel, so skipping two launches lands on the attention launch.
  bench=(bash .gpu/run.sh sageattn bench --hd 128 --n 4096 --causal off --dtype fp16 --variants HopperQkInt8PvFp8 --no-torch --reps 1 --warmup 0 --inputs 1)
  timeout 300 ncu --clock-control none --target-processes all -k regex:Kernel --launch-skip 2 -c 1 \
    --section SpeedOfLight --section SchedulerStats --section WarpStateStats --section Occupancy --section InstructionStats \
    --section SourceCounters --export /tmp/wgmma "${bench[@]}" >> $OUT/profile.txt 2>&1
  ncu --import /tmp/wgmma.ncu-rep --page details >> $OUT/profile.txt 2>&1
  ncu --import /tmp/wgmma.ncu-rep --page source --csv --print-source sass 2>/dev/null | gzip -c > $OUT/ncu_source.csv.gz
  bash .gpu/run.sh sageattn ptx --out /tmp/ptx > /dev/null
  ptxas -arch=sm_90a /tmp/ptx/attention_HopperQkInt8PvFp8_d128_wg3.ptx -o /tmp/wgmma.cubin && cuobjdump -sass /tmp/wgmma.cubin | gzip -c > $OUT/sass.txt.gz
elif [ "$mode" = e2e ]; then
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/e2e.txt
  timeout 500 bash .gpu/run.sh sageattn e2e --model qwen3-8b --backend both --prompt 8192,32768 --batch 1 --decode 32 2>&1 | tee -a $OUT/e2e.txt
else
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/perf.txt
  # hd 128 then 64, N 1K..32K, causal and not, fp16 (bf16: add --dtype bf16 when time allows). The files are rewritten
  # after every shape, so the time limit keeps what was measured.
  timeout 400 bash .gpu/run.sh sageattn bench --hd 128,64 --dtype fp16 --variants HopperQkInt8PvFp8,HopperQkInt8PvFp16,QkInt8PvFp8,QkInt8PvFp8Fp16Accum,QkInt8PvFp16 --out $OUT 2>&1 | tee $OUT/bench.log | grep -vE "^progress" | tail -100
  { echo "== bench-decode"; timeout 45 bash .gpu/run.sh sageattn bench-decode --batch 1,16,64 --ctx 1024,8192,32768 --reps 30
    echo "== sp-bench (several partitions on one GPU: the split's overhead)"; timeout 60 bash .gpu/run.sh sageattn sp-bench --n 65536 --gpus 1,2 --reps 2
  } 2>&1 | tee -a $OUT/perf.txt
fi
