"""Hugging Face training-parity golden for a GPU backend (issue #10 "Correctness").

Reads a folder written by our side (apps/bench/src/gpt2/train-parity.ts `inputs`):
  checkpoint.safetensors  OUR checkpoint (Hugging Face GPT-2 tensor names, Conv1D (in, out) weights, tied
                          head absent, our metadata with the config JSON; optimizer.* tensors ignored)
  batch.safetensors       input.tokens, input.targets: int32 (B, T)
builds transformers.GPT2LMHeadModel from that config (no download), loads the weights by name, and computes
the mean cross-entropy and every parameter gradient three ways:
  fp64  the model in float64 (the oracle)                                  -> golden-fp64.safetensors
  fp32  the model in float32, TF32 off                                    -> golden-fp32.safetensors
  bf16  float32 master weights, forward + loss under torch.autocast(bfloat16) -> golden-bf16.safetensors
Each file: grad.<HF name> (float32) for every parameter and the loss (repr of a double) in the metadata,
the same format as src/parity/golden.safetensors. Our side then judges ours against these with
apps/bench/src/gpt2/parity-rule.ts (error vs the fp64 oracle <= 2x PyTorch's same-precision error + floor).

Usage: python3 hf_train_golden.py <dir> [--device cuda|cpu] [--modes fp64,fp32,bf16]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def load_ours(ckpt):
    """Our checkpoint: its config (metadata JSON) and its weights by Hugging Face name (optimizer.* dropped)."""
    with safe_open(ckpt, framework="pt") as f:
        cfg = json.loads(f.metadata()["config"])
    weights = {k: v for k, v in load_file(ckpt).items() if not k.startswith("optimizer.")}
    return cfg, weights


def hf_model(cfg, weights, device, dtype):
    """transformers.GPT2LMHeadModel of our config (no download: tanh GELU, no dropout, LayerNorm eps 1e-5,
    tied head) in `dtype`, with our weights loaded by name; train() mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg["vocabSize"], n_positions=cfg["maxSeqLen"], n_embd=cfg["nEmbd"], n_layer=cfg["nLayer"],
        n_head=cfg["nHead"], activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(hf_cfg).to(device).to(dtype)
    sd = {"transformer." + k: v for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "lm_head.weight" and not m.endswith((".attn.bias", "masked_bias"))]
    assert not missing and not unexpected, (missing, unexpected)
    model.tie_weights()
    model.train()  # dropout is 0; train() as in training
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default="fp64,fp32,bf16")
    a = ap.parse_args()

    cfg, weights = load_ours(f"{a.dir}/checkpoint.safetensors")
    batch = load_file(f"{a.dir}/batch.safetensors")
    tokens = batch["input.tokens"].long().to(a.device)
    targets = batch["input.targets"].long().to(a.device)
    V = cfg["vocabSize"]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for mode in a.modes.split(","):
        model = hf_model(cfg, weights, a.device, torch.float64 if mode == "fp64" else torch.float32)
        t0 = time.perf_counter()
        with torch.autocast(device_type=a.device, dtype=torch.bfloat16, enabled=(mode == "bf16")):
            logits = model(input_ids=tokens).logits
            # the loss in float32 under autocast (as autocast itself would), in float64 for the oracle
            acc = torch.float64 if mode == "fp64" else torch.float32
            loss = F.cross_entropy(logits.reshape(-1, V).to(acc), targets.reshape(-1))
        loss.backward()
        params = dict(model.named_parameters())
        golden = {"grad." + k: params["transformer." + k].grad.float().contiguous().cpu() for k in weights}
        meta = {
            "loss": repr(loss.item()),
            "mode": mode,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
            "tf32": "false",
            "config": json.dumps(cfg),
        }
        out = f"{a.dir}/golden-{mode}.safetensors"
        save_file(golden, out, metadata=meta)
        print(f"{mode}: loss {loss.item():.10f}, {len(golden)} gradients, {time.perf_counter() - t0:.1f} s -> {out}", flush=True)
        del model, params, golden, logits, loss
        if a.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
