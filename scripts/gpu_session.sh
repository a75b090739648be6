#!/usr/bin/env bash
# One GPU-machine session after `../shared/gpu/bundle src/Cli/SageAttn.Cli.csproj tests/SageAttn.Tests/SageAttn.Tests.csproj`:
# CUDA tests (kernels, quantizers, runtime, TorchSharp backend), ptxas report, info, demo and the benchmark (torch SDPA
# and every Sage variant in one process on one card). Results go to $OUT: 8 files at most come back, so the device
# facts, info and ptxas share gpu.txt.
#   gpu.txt  gpu_tests.xml  gpu_tests.log  demo.txt  bench.log  bench.csv  bench.json  bench_tops.png
set -o pipefail
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
bash .gpu/run.sh SageAttn.Tests -trait gpu=true -result-xml $OUT/gpu_tests.xml 2>&1 | tee $OUT/gpu_tests.log | grep -E "FAIL|Total" | head -40
timeout 60 bash .gpu/run.sh sageattn info >> $OUT/gpu.txt 2>&1
bash .gpu/run.sh sageattn ptx --out /tmp/ptx > /dev/null && for f in /tmp/ptx/*.ptx; do echo "$f"; ptxas -arch=sm_90 -v "$f" -o /dev/null 2>&1 | grep -E "registers|spill|stack"; done >> $OUT/gpu.txt
timeout 120 bash .gpu/run.sh sageattn demo 2>&1 | tee $OUT/demo.txt
# The full matrix (hd 64/128, N 1K..32K, causal and not, fp16 and bf16): ~3 min on an H100. bench.csv/json/png are
# rewritten after every shape, so the time limit keeps what was measured if the run is slower than expected.
timeout 420 bash .gpu/run.sh sageattn bench --out $OUT 2>&1 | tee $OUT/bench.log | grep -vE "^progress" | tail -120
