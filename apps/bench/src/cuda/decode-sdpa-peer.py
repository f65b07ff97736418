#!/usr/bin/env python3
"""PyTorch peer of the CUDA decode benchmark (issue #12; device-run.mjs decode-bench, decode-run.ts): one new
query per sequence over L cached keys, Hq = 32, Hk = 8, D = 128, bf16, batch x L from the same flags, through
torch.nn.functional.scaled_dot_product_attention with each of the FLASH_ATTENTION, EFFICIENT_ATTENTION and
CUDNN_ATTENTION backends (whichever accept the shape; a rejection is recorded with its reason).
  - q (B, Hq, 1, D), k and v (B, Hk, L, D) contiguous (SDPA's preferred layout; ours reads (B, L, Hk, D)); with
    --layout blhd, k and v are (B, L, Hk, D) contiguous (flash-attn's KV-cache layout, the one ours reads) passed
    as their (B, Hk, L, D) transposed views: the same memory layout on both sides.
  - GQA: enable_gqa=True first; a backend that rejects it is timed again on k, v expanded to Hq heads with
    repeat_interleave before timing (recorded as gqa = 'repeat_interleave': it then reads 4x the bytes).
  - No mask: with one query at the end of the sequence, causal (bottom-right) masks nothing; SDPA's is_causal is
    top-left aligned and would hide every key but the first, so it is off.
  - Times: CUDA-event medians of `iters` calls after 3 warm-ups. GB/s = the K/V bytes of the Hk heads
    (2 B L Hk D 2) / time, the same count as ours, whatever the backend actually reads.
  - torch's own copy bandwidth (dst.copy_(src), 1 GiB, reads + writes) in the same run, for reference.
Usage: python3 decode-sdpa-peer.py [--batches 1,4,16,64] [--lens 1024,...] [--max-tokens 2097152] [--iters 20]
                                   [--impls flash,efficient,cudnn] [--layout bhld|blhd] [--json out.json]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel

from torch_peer import median_ms, sdpa_backends, torch_info

HQ, HK, D = 32, 8, 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--lens", default="1024,4096,8192,16384,32768,65536,131072")
    ap.add_argument("--max-tokens", type=int, default=2 ** 21)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--impls", default="flash,efficient,cudnn")
    ap.add_argument("--layout", choices=("bhld", "blhd"), default="bhld")
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device("cuda")
    dtype = torch.bfloat16
    backends = sdpa_backends(args.impls)

    nbytes = 2 ** 30
    src = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    copy_ms = median_ms(lambda: dst.copy_(src), args.iters)
    copy_gbps = 2 * nbytes / copy_ms / 1e6
    print(f"torch copy_: {nbytes} bytes in {copy_ms:.3f} ms = {copy_gbps:.0f} GB/s (read + write)", flush=True)
    del src, dst

    shapes = [(b, n) for b in map(int, args.batches.split(",")) for n in map(int, args.lens.split(","))
              if b * n <= args.max_tokens]
    results = []
    g = torch.Generator(device=dev).manual_seed(1234)
    for B, L in shapes:
        q = torch.randn(B, HQ, 1, D, device=dev, dtype=dtype, generator=g)
        if args.layout == "blhd":  # (B, L, Hk, D) memory seen as (B, Hk, L, D)
            k = torch.randn(B, L, HK, D, device=dev, dtype=dtype, generator=g).transpose(1, 2)
            v = torch.randn(B, L, HK, D, device=dev, dtype=dtype, generator=g).transpose(1, 2)
        else:
            k = torch.randn(B, HK, L, D, device=dev, dtype=dtype, generator=g)
            v = torch.randn(B, HK, L, D, device=dev, dtype=dtype, generator=g)
        kv_bytes = 2 * B * L * HK * D * 2
        for name, backend in backends.items():
            row = dict(impl=name, layout=args.layout, batch=B, seqlenK=L, nheadsQ=HQ, nheadsK=HK, headDim=D, kvBytes=kv_bytes)
            errors = []
            for gqa in ("enable_gqa", "repeat_interleave"):
                try:
                    with sdpa_kernel([backend]):
                        if gqa == "enable_gqa":
                            def call():
                                F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                        else:
                            kr = k.repeat_interleave(HQ // HK, dim=1)
                            vr = v.repeat_interleave(HQ // HK, dim=1)

                            def call():
                                F.scaled_dot_product_attention(q, kr, vr)
                        with torch.no_grad():
                            ms = median_ms(call, args.iters)
                    row.update(gqa=gqa, ms=ms, gbps=kv_bytes / ms / 1e6)
                    break
                except Exception as e:  # a backend may reject the shape or GQA; record why
                    errors.append(f"{gqa}: " + str(e).splitlines()[0][:160] if str(e) else f"{gqa}: {type(e).__name__}")
                finally:
                    kr = vr = None
                    torch.cuda.empty_cache()
            if "ms" in row:
                print(f"sdpa {name:9s} {args.layout} B={B:2d} L={L:6d} ({row['gqa']}): {row['ms']:.4f} ms, {row['gbps']:.0f} GB/s",
                      flush=True)
            else:
                row.update(error=" | ".join(errors))
                print(f"sdpa {name:9s} B={B:2d} L={L:6d}: unavailable: {row['error']}", flush=True)
            results.append(row)
        del q, k, v
        torch.cuda.empty_cache()
    info = torch_info(copy=dict(bytes=nbytes, ms=copy_ms, gbps=copy_gbps))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info=info, results=results), f, indent=1)


if __name__ == "__main__":
    main()
