"""Hugging Face parity golden for GPT-2 with and without a KV cache (issue #12).

Builds a tiny transformers.GPT2LMHeadModel from a config (random initialisation, no download),
perturbs every parameter with N(0, 0.1) so LayerNorm, biases and attention are far from trivial,
and saves it with save_pretrained (safetensors + config.json) - the files our loader must read
unchanged. Then, in float64 from exactly the saved float32 weights, records the logits of a fixed
token batch (B, T) two ways: one full forward, and a prefill of the first P tokens followed by one
token per step through past_key_values (use_cache=True). Writes:
  <out>/model.safetensors, <out>/config.json   (save_pretrained's files)
  <out>/hf-kv-golden.safetensors               logits (B, T, V), logits_cached (B, T, V) float32,
                                               tokens (B, T) int32; metadata: prefill, versions, the
                                               float64 difference of the two paths.
Usage: python3 hf_kv_golden.py <out-dir>
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(20261206)
cfg = GPT2Config(
    vocab_size=64, n_positions=24, n_embd=32, n_layer=2, n_head=4, activation_function="gelu_new",
    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True,
)
model = GPT2LMHeadModel(cfg).eval()
with torch.no_grad():
    for p in model.parameters():
        p.add_(0.1 * torch.randn_like(p))
model.save_pretrained(out, safe_serialization=True)
print("saved:", sorted(os.listdir(out)))

m64 = GPT2LMHeadModel.from_pretrained(out).double().eval()
# the reloaded weights are the saved float32 values exactly
ref = {k: v.double() for k, v in model.state_dict().items()}
worst = max((ref[k] - v).abs().max().item() for k, v in m64.state_dict().items() if k in ref)
assert worst == 0.0, f"reloaded weights differ by {worst}"
B, T, P = 2, 20, 12
g = torch.Generator().manual_seed(7)
tokens = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
with torch.no_grad():
    full = m64(input_ids=tokens).logits  # (B, T, V)
    o = m64(input_ids=tokens[:, :P], use_cache=True)
    steps, past = [o.logits], o.past_key_values
    for t in range(P, T):
        o = m64(input_ids=tokens[:, t : t + 1], past_key_values=past, use_cache=True)
        steps.append(o.logits)
        past = o.past_key_values
    cached = torch.cat(steps, dim=1)
diff = (full - cached).abs().max().item()
print(f"float64 full vs cached: max |d logits| {diff:.3e}; logit scale {full.abs().max().item():.3f}")
assert diff < 1e-10
meta = {
    "prefill": str(P),
    "config": json.dumps({"vocabSize": 64, "maxSeqLen": 24, "nLayer": 2, "nHead": 4, "nEmbd": 32}),
    "float64_full_vs_cached": repr(diff),
    "torch": torch.__version__,
    "transformers": transformers.__version__,
}
save_file(
    {
        "logits": full.float().contiguous(),
        "logits_cached": cached.float().contiguous(),
        "tokens": tokens.to(torch.int32).contiguous(),
    },
    os.path.join(out, "hf-kv-golden.safetensors"),
    metadata=meta,
)
print("wrote", out, sorted(os.listdir(out)))
