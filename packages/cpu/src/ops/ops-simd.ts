/**
 * The GPT-2 ops with wasm SIMD (wasm/ops-simd.mjs): layernorm forward/backward, GELU forward/backward,
 * softmax cross-entropy, AdamW on float32 buffers that live in the ops' wasm memory. CpuOps calls these
 * when every buffer of the call is in the arena, else the scalar kernels (layernorm.ts, gelu.ts,
 * softmax-xent.ts, adamw.ts), which stay the reference: the ops conformance suite runs CpuOps with its
 * buffers in the arena, so it checks this path (ops-simd.test.ts checks that it is the one taken).
 *
 * 2026-12-07, 2-core EPYC (Zen 3, load 6), one thread, FMA variant, CPU time, median of 5, against the
 * scalar kernels on the same sizes: layernorm forward 2048 x 768 10.0 -> 1.57 ms, backward 14.4 -> 2.01
 * ms, GELU forward 2048 x 3072 165 -> 9.7 ms, backward 182 -> 15.0 ms, softmax cross-entropy 2048 x 8192
 * 564 -> 42.9 ms, AdamW 10M parameters 90.2 -> 13.9 ms.
 */
import type { AdamWStep } from '@flashattn/core';
import { OPS_FMA_WASM_BASE64, OPS_SIMD_WASM_BASE64 } from './ops-simd.wasm.js';
import { LN_EPS } from './layernorm.js';

export interface OpsSimdExports {
  layernormForward(
    out: number,
    mean: number,
    rstd: number,
    inp: number,
    w: number,
    b: number,
    N: number,
    C: number,
    eps: number,
  ): void;
  layernormBackward(
    dinp: number,
    dw: number,
    db: number,
    dout: number,
    inp: number,
    w: number,
    mean: number,
    rstd: number,
    N: number,
    C: number,
  ): void;
  geluForward(out: number, inp: number, n: number): void;
  geluBackward(dinp: number, inp: number, dout: number, n: number): void;
  rowMax(x: number, n: number): number;
  sumExp(x: number, n: number, shift: number): number;
  expScale(dst: number, x: number, n: number, shift: number, scale: number): void;
  adamw(
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    wd: number,
    c1: number,
    c2: number,
    oneMinusBeta1: number,
    oneMinusBeta2: number,
  ): void;
}

/** The ops module in the attention's variant (FMA or plain), on `memory`. */
export function opsSimdInstance(memory: WebAssembly.Memory, fma: boolean): OpsSimdExports {
  const bytes = Buffer.from(fma ? OPS_FMA_WASM_BASE64 : OPS_SIMD_WASM_BASE64, 'base64');
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } })
    .exports as unknown as OpsSimdExports;
}

export function layernormForwardSimd(
  ex: OpsSimdExports,
  p: { out: number; mean: number; rstd: number; inp: number; w: number; b: number },
  N: number,
  C: number,
): void {
  ex.layernormForward(p.out, p.mean, p.rstd, p.inp, p.w, p.b, N, C, LN_EPS);
}

/**
 * Fused softmax + cross-entropy per row (softmax-xent.ts's contract): max and sum of exp in wasm, the
 * log and the target's loss here, the gradient (p - onehot) * scale written by wasm (in place when
 * dlogits aliases logits: the target's logit is read before).
 */
export function softmaxCrossEntropySimd(
  ex: OpsSimdExports,
  f32: Float32Array,
  losses: number, // (N) byte address
  dlogits: number, // (N, Vp) byte address, or -1
  logits: number, // (N, Vp) byte address
  targets: Int32Array, // (N)
  N: number,
  V: number,
  dlossScale: number,
  Vp = V, // row stride; columns [V, Vp) are padding (dlogits 0 there)
): number {
  let total = 0;
  for (let i = 0; i < N; i++) {
    const row = logits + i * Vp * 4;
    const t = targets[i]!;
    const maxv = ex.rowMax(row, V);
    const lse = maxv + Math.log(ex.sumExp(row, V, maxv));
    const loss = t < 0 ? 0 : lse - f32[row / 4 + t]!;
    f32[losses / 4 + i] = loss;
    total += loss;
    if (dlogits < 0) continue;
    const d = dlogits / 4 + i * Vp;
    f32.fill(0, d + V, d + Vp);
    if (t < 0) {
      f32.fill(0, d, d + V);
      continue;
    }
    ex.expScale(dlogits + i * Vp * 4, row, V, lse, dlossScale);
    f32[d + t] -= dlossScale;
  }
  return total;
}

export function adamwSimd(
  ex: OpsSimdExports,
  p: { params: number; grads: number; m: number; v: number },
  n: number,
  h: AdamWStep,
): void {
  const c1 = 1 - Math.pow(h.beta1, h.t);
  const c2 = 1 - Math.pow(h.beta2, h.t);
  const [b1, b2] = [h.beta1, h.beta2];
  ex.adamw(
    p.params,
    p.grads,
    p.m,
    p.v,
    n,
    h.lr,
    b1,
    b2,
    h.eps,
    h.weightDecay,
    c1,
    c2,
    1 - b1,
    1 - b2,
  );
}
