"""PyTorch's side of the loss curve against ours (issue #10 "Correctness": a 100-step loss curve from the same
initialisation and data order).

Reads a folder written by our side (apps/bench/src/gpt2/train-curve.ts `inputs`):
  checkpoint.safetensors  OUR initial weights (Hugging Face GPT-2 names; loaded as hf_train_golden.py does)
  curve-data.safetensors  curve.x, curve.y: int32 (S, B, T), the inputs and targets of every step (the Brown
                          corpus in our trainer's order); metadata "curve": JSON with the learning rate of
                          every step (lrs), AdamW (beta1, beta2, eps, weightDecay) and clip
and trains transformers.GPT2LMHeadModel from those weights on those batches, S steps, in each mode:
  fp64  the model in float64 (the oracle)
  fp32  the model in float32, TF32 off
  bf16  float32 master weights, forward + loss under torch.autocast(bfloat16)
Each step: zero_grad, forward, cross-entropy (float32; float64 in fp64) against curve.y, backward,
torch.nn.utils.clip_grad_norm_(clip), torch.optim.AdamW (default implementation; weight decay on tensors of
rank >= 2 = matrices and embeddings, 0 on biases and LayerNorm: the same groups as ours), learning rate
lrs[s]. Writes <dir>/torch-<mode>.json: the loss of every step (before its update) and the gradient norm
before clipping.

Usage: python3 hf_train_curve.py <dir> [--device cuda|cpu] [--modes fp64,fp32,bf16]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_train_golden import hf_model, load_ours  # noqa: E402


def train(model, x, y, spec, mode, device):
    V = spec["config"]["vocabSize"]
    adamw = spec["adamw"]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": adamw["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec["lrs"][0], betas=(adamw["beta1"], adamw["beta2"]), eps=adamw["eps"],
    )
    acc = torch.float64 if mode == "fp64" else torch.float32
    losses, norms = [], []
    for s in range(spec["steps"]):
        for g in opt.param_groups:
            g["lr"] = spec["lrs"][s]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=(mode == "bf16")):
            logits = model(input_ids=x[s]).logits
            loss = F.cross_entropy(logits.reshape(-1, V).to(acc), y[s].reshape(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec["clip"])
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
        if s % 10 == 0 or s == spec["steps"] - 1:
            print(f"torch {mode} step {s}: loss {losses[-1]:.6f} norm {norms[-1]:.4f}", flush=True)
    return losses, norms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default="fp64,fp32,bf16")
    a = ap.parse_args()

    cfg, weights = load_ours(f"{a.dir}/checkpoint.safetensors")
    data_path = f"{a.dir}/curve-data.safetensors"
    with safe_open(data_path, framework="pt") as f:
        spec = json.loads(f.metadata()["curve"])
    data = load_file(data_path)
    x = data["curve.x"].long().to(a.device)  # (S, B, T)
    y = data["curve.y"].long().to(a.device)  # (S, B, T)
    assert cfg["vocabSize"] == spec["config"]["vocabSize"], (cfg, spec["config"])
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for mode in a.modes.split(","):
        t0 = time.perf_counter()
        if a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        model = hf_model(cfg, weights, a.device, torch.float64 if mode == "fp64" else torch.float32)
        losses, norms = train(model, x, y, spec, mode, a.device)
        out = f"{a.dir}/torch-{mode}.json"
        with open(out, "w") as fh:
            json.dump({
                "mode": mode,
                "losses": losses,
                "norms": norms,
                "steps": spec["steps"],
                "optimizer": "torch.optim.AdamW (default implementation), clip_grad_norm_",
                "torch": torch.__version__,
                "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
                "tf32": False,
                "seconds": time.perf_counter() - t0,
                "maxMemoryAllocated": torch.cuda.max_memory_allocated() if a.device == "cuda" else None,
            }, fh)
        mem = f", max allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if a.device == "cuda" else ""
        print(f"{mode}: {len(losses)} steps, last loss {losses[-1]:.6f}, {time.perf_counter() - t0:.1f} s{mem} -> {out}", flush=True)
        del model
        if a.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
