"""PyTorch peer of our GPT-2 training step (issue #10 "Performance"), run in the same device command as
apps/bench/src/gpt2/train-bench.ts (see device.sh) on the same GPU:

  python3 torch_gpt2_peer.py [--device cuda] [--config gpt2-124m] [--batch 16] [--seq 1024]
                             [--modes eager,compile] [--dtype bf16] [--warmup 3] [--steps 10] [--json F]
  python3 torch_gpt2_peer.py --device cpu --config tiny --steps 2 --modes eager   # a check without a GPU

The model is GPT-2 as ours computes it (apps/bench/src/gpt2/configs.ts shapes): token + position
embeddings, pre-LN blocks (LayerNorm eps 1e-5, fused qkv linear, F.scaled_dot_product_attention with
is_causal=True, output projection, 4C MLP with tanh GELU), final LayerNorm, head tied to wte, mean
cross-entropy; vocabulary 50257 NOT padded to 50304 (ours has no padded vocabulary, so neither does this).
Init N(0, 0.02), residual projections 0.02 / sqrt(2 L), as ours.
The step: zero grads, forward + loss under torch.autocast(bfloat16) with fp32 master weights (--dtype
fp32: no autocast), backward, clip_grad_norm_(1.0), AdamW (lr 6e-4, betas (0.9, 0.95), eps 1e-8, weight
decay 0.1 on matrices and embeddings, 0 on biases and LayerNorm; fused=True where available), loss.item()
(ours reads its loss back every step too). Data: random token ids (fresh per step, seeded).
Modes: eager, and torch.compile(model) (compilation happens in the warmup steps and is not timed).
Reported per mode: ms/step (N steps between two synchronisations / N), tokens/s, model TFLOP/s and MFU with
the FLOP count of @flashattn/transformer flops.ts (6 N + 12 L C T per token, N without wpe, causal
attention not halved: the FlashAttention-2 paper's end-to-end convention), and
torch.cuda.max_memory_allocated (reset before each mode, model and optimizer state included).
"""
import argparse
import gc
import json
import math
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {  # the same shapes as apps/bench/src/gpt2/configs.ts
    "tiny": dict(vocab=2048, positions=1024, L=4, H=4, C=128),
    "small": dict(vocab=8192, positions=1024, L=6, H=6, C=384),
    "gpt2-124m": dict(vocab=50257, positions=1024, L=12, H=12, C=768),
    "gpt2-350m": dict(vocab=50257, positions=1024, L=24, H=16, C=1024),
    "gpt2-124m-8k": dict(vocab=50257, positions=8192, L=12, H=12, C=768),
}


class Block(nn.Module):
    def __init__(self, C, H, L):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)
        for lin, std in ((self.c_attn, 0.02), (self.attn_proj, 0.02 / math.sqrt(2 * L)),
                         (self.c_fc, 0.02), (self.mlp_proj, 0.02 / math.sqrt(2 * L))):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, vocab, positions, L, H, C):
        super().__init__()
        self.wte = nn.Embedding(vocab, C)
        self.wpe = nn.Embedding(positions, C)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList(Block(C, H, L) for _ in range(L))
        self.ln_f = nn.LayerNorm(C, eps=1e-5)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # tied head
        # autocast runs cross_entropy in float32 (its fp32 op list), as nanoGPT relies on
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def flops_per_token(cfg, T):
    """6 N + 12 L C T, N = all parameters except wpe (flops.ts, FA2 end-to-end convention)."""
    C, L, V = cfg["C"], cfg["L"], cfg["vocab"]
    n = V * C + L * (12 * C * C + 13 * C) + 2 * C
    return 6 * n + 12 * L * C * T


def peak_tflops(name, dtype):
    """H100 / H200 SXM dense peaks (flops.ts lookupPeakTflops): bf16 989.5, fp32 67; else None."""
    if not re.search(r"\b(H100|H200)\b", name, re.I) or re.search(r"H100[^,;)]*(PCIe|NVL)", name, re.I):
        return None
    return 989.5 if dtype in ("bf16", "fp16") else 67.0


def make_optimizer(model, device):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    kw = dict(lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    try:
        return torch.optim.AdamW(groups, fused=True, **kw), True
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, **kw), False


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_mode(mode, args, cfg, device):
    torch.manual_seed(args.seed)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = GPT2(**cfg).to(device)
    opt, fused = make_optimizer(model, device)
    fwd = torch.compile(model) if mode == "compile" else model
    gen = torch.Generator(device=device).manual_seed(args.seed + 1)
    B, T, V = args.batch, args.seq, cfg["vocab"]
    amp = args.dtype != "fp32"
    amp_dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16

    def step():
        x = torch.randint(V, (B, T), device=device, generator=gen)
        y = torch.randint(V, (B, T), device=device, generator=gen)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=amp_dtype, enabled=amp):
            loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    t_warm = time.perf_counter()
    for _ in range(args.warmup):
        step()
    sync(device)
    warm_s = time.perf_counter() - t_warm
    losses = []
    t0 = time.perf_counter()
    for _ in range(args.steps):
        losses.append(step())
    sync(device)
    ms = (time.perf_counter() - t0) * 1000 / args.steps
    tok_s = B * T / (ms / 1000)
    fpt = flops_per_token(cfg, T)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = args.peak_tflops if args.peak_tflops else peak_tflops(name, args.dtype)
    model_tflops = tok_s * fpt / 1e12
    r = dict(
        mode=mode, config=args.config, batch=B, seq=T, dtype=args.dtype, steps=args.steps, warmup=args.warmup,
        warmupSeconds=warm_s, msPerStep=ms, tokensPerSec=tok_s, flopsPerToken=fpt, modelTflops=model_tflops,
        peakTflops=peak, mfu=(model_tflops / peak) if peak else None,
        maxMemoryAllocated=torch.cuda.max_memory_allocated() if device == "cuda" else None,
        fusedAdamW=fused, losses=losses,
    )
    del model, opt, fwd
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--config", default="gpt2-124m", choices=list(CONFIGS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cfg = CONFIGS[args.config]
    if args.seq > cfg["positions"]:
        ap.error(f"--seq {args.seq} exceeds {args.config}'s {cfg['positions']} positions")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch.cuda.is_available() is False")
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {name}; {args.config} B={args.batch} T={args.seq} {args.dtype}; "
          f"tf32 matmul {torch.backends.cuda.matmul.allow_tf32}", flush=True)
    results = []
    for mode in [m for m in args.modes.split(",") if m]:
        if mode not in ("eager", "compile"):
            ap.error(f"--modes: unknown mode {mode!r} (eager, compile)")
        try:
            r = run_mode(mode, args, cfg, args.device)
        except torch.cuda.OutOfMemoryError as e:  # report and go on with the next mode
            r = dict(mode=mode, config=args.config, batch=args.batch, seq=args.seq, error=f"out of memory: {e}")
        results.append(r)
        if "error" in r:
            print(f"torch {mode}: {r['error']}", flush=True)
            continue
        mem = r["maxMemoryAllocated"]
        print(f"torch {mode:7s} {args.config} B={args.batch} T={args.seq} {args.dtype}: {r['msPerStep']:.2f} ms/step, "
              f"{r['tokensPerSec']:.0f} tokens/s, {r['modelTflops']:.2f} model TFLOP/s"
              + (f", MFU {100 * r['mfu']:.1f}%" if r["mfu"] else "")
              + (f", max allocated {mem / 2**20:.0f} MiB" if mem is not None else "")
              + f" (warmup {r['warmupSeconds']:.1f} s; losses {r['losses'][0]:.4f}..{r['losses'][-1]:.4f})", flush=True)
    out = dict(torch=torch.__version__, device=name, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               tf32=torch.backends.cuda.matmul.allow_tf32, results=results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
