"""torch SDPA baseline for `sageattn bench`: same shapes (hd128, B=16384/N, H=32, fp16 randn, HND),
CUDA events, median of 20 after 3 warm-ups. Run in the same device session as the .NET benchmark."""
import csv, sys, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

out = sys.argv[1] if len(sys.argv) > 1 else "bench_torch.csv"
rows = [("backend", "n", "causal", "ms", "tops")]
for n in (1024, 4096, 16384):
    b, h, d = max(1, 16384 // n), 32, 128
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.float16) for _ in range(3))
    for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash2", SDPBackend.FLASH_ATTENTION)):
        for causal in (False, True):
            with sdpa_kernel(backend):
                for _ in range(3): F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                times = []
                for _ in range(20):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record(); F.scaled_dot_product_attention(q, k, v, is_causal=causal); e.record()
                    torch.cuda.synchronize(); times.append(s.elapsed_time(e))
            ms = sorted(times)[10]
            tops = 4 * b * h * n * n * d * (0.5 if causal else 1.0) / (ms * 1e-3) / 1e12
            rows.append((name, n, causal, f"{ms:.4f}", f"{tops:.1f}"))
            print(f"torch {name:7s} N={n:6d} causal={causal!s:5s} {ms:8.3f} ms {tops:7.1f} TOPS", flush=True)
with open(out, "w", newline="") as f:
    csv.writer(f).writerows(rows)
