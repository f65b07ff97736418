"""PyTorch golden values for @flashattn/transformer's parity test.

Reads parity-inputs.safetensors (weights with Hugging Face GPT-2 names + tokens + targets, written by
write-inputs.mjs), runs the same GPT-2 in float64 two independent ways:
  1. transformers.GPT2LMHeadModel (Hugging Face's own GPT-2, weights loaded by name, lm_head tied),
  2. a plain-torch GPT-2 written from the paper (F.layer_norm, F.scaled_dot_product_attention, gelu tanh),
checks they agree, and writes golden.safetensors: logits (B, T, V), every parameter gradient of the
mean cross-entropy (`grad.<hf name>`), and the loss in the metadata. Stored as float32 to stay small.

Usage: python3 torch_golden.py <inputs.safetensors> <out.safetensors>
"""
import hashlib
import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from safetensors import safe_open

torch.manual_seed(0)
inp_path, out_path = sys.argv[1], sys.argv[2]
tensors = load_file(inp_path)
with safe_open(inp_path, framework="pt") as f:
    cfg = json.loads(f.metadata()["config"])
V, T_max, L, H, C = cfg["vocabSize"], cfg["maxSeqLen"], cfg["nLayer"], cfg["nHead"], cfg["nEmbd"]
tokens = tensors.pop("input.tokens").long()
targets = tensors.pop("input.targets").long()
B, T = tokens.shape
weights = {k: v.double() for k, v in tensors.items()}


def plain_gpt2(w):
    """GPT-2 forward in plain torch; w maps HF names to float64 leaf tensors."""
    x = w["wte.weight"][tokens] + w["wpe.weight"][:T]
    D = C // H
    for l in range(L):
        p = f"h.{l}."
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps=1e-5)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # Conv1D: (in, out)
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps=1e-5)
        h = F.gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"], eps=1e-5)
    return x @ w["wte.weight"].T


# 1. plain torch
w1 = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
logits1 = plain_gpt2(w1)
loss1 = F.cross_entropy(logits1.reshape(-1, V), targets.reshape(-1))
loss1.backward()
grads1 = {k: v.grad for k, v in w1.items()}

# 2. Hugging Face GPT2LMHeadModel
used_hf = False
try:
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=V, n_positions=T_max, n_embd=C, n_layer=L, n_head=H, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(hf_cfg).double().eval()
    sd = {"transformer." + k: v for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "lm_head.weight" and not m.endswith(".attn.bias") and not m.endswith("masked_bias")]
    assert not missing and not unexpected, (missing, unexpected)
    model.tie_weights()
    out = model(input_ids=tokens)
    logits2 = out.logits
    loss2 = F.cross_entropy(logits2.reshape(-1, V), targets.reshape(-1))
    loss2.backward()
    params = dict(model.named_parameters())
    grads2 = {k: params["transformer." + k].grad for k in weights}
    err_logits = (logits1 - logits2).abs().max().item()
    err_grads = max((grads1[k] - grads2[k]).abs().max().item() for k in weights)
    print(f"HF GPT2LMHeadModel vs plain torch: max |dlogits| {err_logits:.3e}, max |dgrad| {err_grads:.3e}")
    assert err_logits < 1e-9 and err_grads < 1e-9, "the two torch GPT-2s disagree"
    used_hf = True
except Exception as e:  # noqa: BLE001 - the plain-torch golden stands on its own
    used_hf = f"False ({type(e).__name__}: {e})"
    print(f"HF cross-check skipped: {used_hf}")

golden = {"logits": logits1.detach().float().contiguous()}
for k, g in grads1.items():
    golden["grad." + k] = g.float().contiguous()
meta = {
    "loss": repr(loss1.item()),
    "torch": torch.__version__,
    "checked_against_hf_gpt2": str(used_hf),
    "inputs_sha256": hashlib.sha256(open(inp_path, "rb").read()).hexdigest(),
}
save_file(golden, out_path, metadata=meta)
print(f"loss {loss1.item():.12f}; wrote {out_path} ({len(golden)} tensors)")
