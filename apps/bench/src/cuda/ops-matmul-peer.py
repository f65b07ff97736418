#!/usr/bin/env python3
"""PyTorch's matmuls on GPT-2 124M's shapes (B*T = 16384, C = 768, V = 50304), bf16: the peer of
device-run.mjs ops-bench (CudaOps.matmul through cuBLASLt). The same list of shapes as ops-run.ts's
gpt2MatmulShapes: each linear layer's forward (torch.addmm with the bias), the input gradient
(dout @ W^T) and the weight gradient accumulated (dW += x^T @ dout, addmm_ with beta = 1), and the tied head.
Row-major as ours: out (M, N) = op(A) (M, K) op(B) (K, N). Timed like ours: wall clock of N back-to-back
calls after warmup, then a synchronize, divided by N.

  python3 ops-matmul-peer.py [--iters 50] [--json F]
"""
import argparse
import json
import time

import torch


def shapes(BT=16384, C=768, V=50304):
    out = []
    for layer, cin, cout in [("qkv", C, 3 * C), ("attproj", C, C), ("fc", C, 4 * C), ("fcproj", 4 * C, C)]:
        out.append(dict(name=f"{layer} fwd", M=BT, N=cout, K=cin, bias=True))
        out.append(dict(name=f"{layer} dinp", M=BT, N=cin, K=cout, transB=True))
        out.append(dict(name=f"{layer} dW", M=cin, N=cout, K=BT, transA=True, accumulate=True))
    out.append(dict(name="lmhead fwd", M=BT, N=V, K=C, transB=True))
    out.append(dict(name="lmhead dinp", M=BT, N=C, K=V))
    out.append(dict(name="lmhead dW", M=V, N=C, K=BT, transA=True, accumulate=True))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--json")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    dt = torch.bfloat16
    results = []
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, bf16, {a.iters} iterations per shape")
    for s in shapes():
        M, N, K = s["M"], s["N"], s["K"]
        A = torch.randn((K, M) if s.get("transA") else (M, K), device=dev, dtype=dt)
        B = torch.randn((N, K) if s.get("transB") else (K, N), device=dev, dtype=dt)
        out = torch.zeros((M, N), device=dev, dtype=dt)
        bias = torch.randn((N,), device=dev, dtype=dt) if s.get("bias") else None
        opA = A.t() if s.get("transA") else A
        opB = B.t() if s.get("transB") else B

        def call():
            if bias is not None:
                torch.addmm(bias, opA, opB, out=out)
            elif s.get("accumulate"):
                out.addmm_(opA, opB)
            else:
                torch.matmul(opA, opB, out=out)

        for _ in range(5):
            call()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            call()
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3 / a.iters
        tflops = 2 * M * N * K / (ms * 1e-3) / 1e12
        results.append(dict(name=s["name"], M=M, N=N, K=K, ms=ms, tflops=tflops))
        print(f"{s['name']:<14} M {M} N {N} K {K}: {ms:.3f} ms, {tflops:.0f} TFLOP/s")
        del A, B, out, bias
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, dtype="bfloat16", iters=a.iters, results=results), f, indent=1)


if __name__ == "__main__":
    main()
