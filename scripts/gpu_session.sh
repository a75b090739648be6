#!/usr/bin/env bash
# One GPU-machine session after `../shared/gpu/bundle src/Cli/SageAttn.Cli.csproj tests/SageAttn.Tests/SageAttn.Tests.csproj`:
# CUDA tests (kernels, quantizers, runtime, TorchSharp backend), ptxas report, info, demo, torch SDPA baseline and the
# Sage benchmark, all on the same card. Results go to $OUT.
set -o pipefail
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
bash .gpu/run.sh SageAttn.Tests -trait gpu=true -result-xml $OUT/gpu_tests.xml 2>&1 | tee $OUT/gpu_tests.log | grep -E "FAIL|Total" | head -40
bash .gpu/run.sh sageattn ptx --out /tmp/ptx > /dev/null && for f in /tmp/ptx/*.ptx; do echo "$f"; ptxas -arch=sm_90 -v "$f" -o /dev/null 2>&1 | grep -E "registers|spill|stack"; done > $OUT/ptxas.txt
timeout 60 bash .gpu/run.sh sageattn info 2>&1 | tee $OUT/info.txt | head -20
timeout 120 bash .gpu/run.sh sageattn demo 2>&1 | tee $OUT/demo.txt
timeout 120 python3 scripts/bench_torch_sdpa.py $OUT/bench_torch.csv > /dev/null 2>&1
timeout 300 bash .gpu/run.sh sageattn bench --out $OUT 2>&1 | tail -20
