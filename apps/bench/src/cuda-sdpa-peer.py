#!/usr/bin/env python3
"""PyTorch peer for the @flashattn/cuda benchmark: torch.nn.functional.scaled_dot_product_attention with the
FLASH_ATTENTION and CUDNN_ATTENTION backends on the shapes of apps/bench/src/cuda/shapes.ts (batch x N = 16384
tokens, hidden 2048, H = 2048 / D, plus batch-1 N = 32768), bf16 and fp16, D = 64 and 128, causal and not.
Times are CUDA-event medians of `iters` runs after 3 warm-ups, like the addon's benchmark():
  fwd      = forward only (no autograd graph)
  bwd      = out.backward(dO) on a retained graph (the backward kernels alone)
  fwd+bwd  = forward with autograd + backward
TFLOP/s in the FlashAttention convention: fwd = 4 B H N^2 D (halved when causal), bwd = 2.5 x fwd.
Usage: python3 cuda-sdpa-peer.py [--quick] [--seqlens 4096,...] [--dtypes bfloat16,float16] [--impls flash,cudnn]
                                 [--iters 20] [--json out.json]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda"))
from torch_peer import median_ms, sdpa_backends, torch_info  # noqa: E402 (cuda/torch_peer.py, shared)


def shapes(quick, seqlens=None):
    out = []
    for d in (64, 128):
        for causal in (False, True):
            ns = seqlens or ((2048, 8192) if quick else (512, 1024, 2048, 4096, 8192, 16384))
            for n in ns:
                out.append(dict(batch=16384 // n, seqlen=n, nheads=2048 // d, headDim=d, causal=causal))
            if not quick and not seqlens:
                out.append(dict(batch=1, seqlen=32768, nheads=2048 // d, headDim=d, causal=causal))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--seqlens", help="comma-separated N (batch = 16384 / N); default: the benchmark's")
    ap.add_argument("--dtypes", default="bfloat16,float16")
    ap.add_argument("--impls", default="flash,cudnn")
    args = ap.parse_args()
    seqlens = [int(n) for n in args.seqlens.split(",")] if args.seqlens else None
    dev = torch.device("cuda")
    results = []
    backends = sdpa_backends(args.impls)
    dtypes = (("bfloat16", torch.bfloat16), ("float16", torch.float16))
    for dtype_name, dtype in (d for d in dtypes if d[0] in args.dtypes.split(",")):
        for s in shapes(args.quick, seqlens):
            B, N, H, D, causal = s["batch"], s["seqlen"], s["nheads"], s["headDim"], s["causal"]
            fwd_flops = 4 * B * H * N * N * D / (2 if causal else 1)
            bwd_flops = 2.5 * fwd_flops
            g = torch.Generator(device=dev).manual_seed(1234)
            # (B, H, N, D) is SDPA's layout; the addon's is (B, N, H, D): same work.
            q, k, v, do = (torch.randn(B, H, N, D, device=dev, dtype=dtype, generator=g) for _ in range(4))
            for name, backend in backends.items():
                row = dict(impl=name, dtype=dtype_name, **s)
                try:
                    with sdpa_kernel([backend]):
                        def fwd():
                            with torch.no_grad():
                                F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                        qg, kg, vg = (t.detach().requires_grad_(True) for t in (q, k, v))
                        out = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)

                        def bwd():
                            qg.grad = kg.grad = vg.grad = None
                            out.backward(do, retain_graph=True)

                        def both():
                            qg.grad = kg.grad = vg.grad = None
                            o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
                            o.backward(do)

                        f_ms = median_ms(fwd, args.iters)
                        b_ms = median_ms(bwd, args.iters)
                        fb_ms = median_ms(both, args.iters)
                        del out, qg, kg, vg
                    row.update(fwdMs=f_ms, bwdMs=b_ms, fwdbwdMs=fb_ms,
                               fwdTflops=fwd_flops / f_ms / 1e9, bwdTflops=bwd_flops / b_ms / 1e9,
                               fwdbwdTflops=(fwd_flops + bwd_flops) / fb_ms / 1e9)
                    print(f"{name} {dtype_name} D={D} causal={causal} B={B} N={N} H={H}: fwd {row['fwdTflops']:.1f} "
                          f"bwd {row['bwdTflops']:.1f} fwd+bwd {row['fwdbwdTflops']:.1f} TFLOP/s", flush=True)
                except Exception as e:  # a backend may reject a shape; record why
                    row.update(error=str(e).splitlines()[0][:200])
                    print(f"{name} {dtype_name} D={D} causal={causal} N={N}: unavailable: {row['error']}", flush=True)
                results.append(row)
                torch.cuda.empty_cache()
            del q, k, v, do
    info = torch_info()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info=info, results=results), f, indent=1)


if __name__ == "__main__":
    main()
