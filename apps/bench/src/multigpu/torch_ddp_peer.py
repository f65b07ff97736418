"""PyTorch DDP peer for the multi-GPU GPT-2 benchmark: the same model, AdamW and per-GPU batch as ours.

Run with torchrun (one process per GPU, NCCL):
  NCCL_NVLS_ENABLE=0 torchrun --standalone --nproc-per-node N apps/bench/src/multigpu/torch_ddp_peer.py \
      --config gpt2-124m --batch 16 --seq 1024 --dtype bf16 --warmup 3 --steps 10 --json out.json
Reuses the single-GPU peer's model and optimizer (apps/bench/src/gpt2/torch_gpt2_peer.py). Eager mode (DDP's
bucketed all-reduce overlapped with the backward, bucket_cap_mb 25 as ours). Rank 0 writes the JSON:
tokens/s over the timed steps (all ranks' tokens), per-GPU tokens/s, the world size.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: F401  (the peer's model uses it)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpt2"))
from torch_gpt2_peer import CONFIGS, GPT2, make_optimizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="gpt2-124m", choices=list(CONFIGS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    torch.manual_seed(args.seed)
    cfg = CONFIGS[args.config]
    model = GPT2(**cfg).cuda()
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local], bucket_cap_mb=25)
    opt, _ = make_optimizer(model, "cuda")
    gen = torch.Generator(device="cuda").manual_seed(args.seed + 1 + rank)
    B, T, V = args.batch, args.seq, cfg["vocab"]

    def step():
        x = torch.randint(V, (B, T), device="cuda", generator=gen)
        y = torch.randint(V, (B, T), device="cuda", generator=gen)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            loss = ddp(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tps = args.steps * B * T * world / dt
    if rank == 0:
        res = dict(world=world, config=args.config, batch=B, seq=T, dtype=args.dtype, steps=args.steps,
                   seconds=dt, tokens_per_sec=tps, tokens_per_sec_per_gpu=tps / world, loss=float(loss),
                   device=torch.cuda.get_device_name(), torch=torch.__version__,
                   nccl=".".join(map(str, torch.cuda.nccl.version())))
        print(json.dumps(res))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
