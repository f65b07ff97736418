// The host's own cost of a CudaOps GPT-2 training step, with no GPU: CudaOps over an addon whose every native
// entry point returns at once (fake device addresses, no launches), so the time is the JavaScript between the model
// and the addon (argument checks, views, promises). Prints host ms per step, the native calls per step by entry
// point and the microseconds per native call. Read it beside the device's slack test (BENCHMARKS.md, issue #10):
// there the host's whole work per step is the step minus the time it waits at read-backs; this is its JS part.
//   npx -y pnpm@10.34.8 --filter @flashattn/bench... build
//   node apps/bench/src/gpt2/host-cost.mjs [B] [T] [steps]          (defaults 16 1024 20: GPT-2 124M, bf16)
import { createRng } from '@flashattn/core';
import { CudaOps } from '@flashattn/cuda';
import { AdamW, GPT2, clipGradNorm } from '@flashattn/transformer';

const [B, T, N] = [16, 1024, 20].map((d, i) => Number(process.argv[2 + i] ?? d));
const INFO = {
  name: 'no-op addon',
  major: 9,
  minor: 0,
  multiProcessorCount: 132,
  totalGlobalMem: 80 * 2 ** 30,
};
let next = 0x10000n;
let calls = {};
const base = {
  deviceCount: () => 1,
  deviceInfo: () => INFO,
  malloc: (_d, bytes) => {
    const p = next;
    next += BigInt(Math.max(256, Math.ceil(bytes / 256) * 256));
    return p;
  },
  free: () => undefined,
  memset: () => undefined,
  synchronize: async () => undefined,
  trimMemPool: () => undefined,
  opsReduceSum: async () => [1],
  opsMatmulGelu: () => true, // the fused GELU epilogue applies (the default path)
};
const addon = new Proxy(base, {
  get(t, p) {
    if (p in t) {
      if (typeof p === 'string' && p.startsWith('ops')) calls[p] = (calls[p] ?? 0) + 1;
      return t[p];
    }
    if (typeof p !== 'string') return undefined;
    return () => {
      calls[p] = (calls[p] ?? 0) + 1;
      return undefined;
    };
  },
});
const ops = new CudaOps(addon, 0, INFO, {}, { path: 'no-op', version: 130100 });
const config = { vocabSize: 50257, maxSeqLen: T, nLayer: 12, nHead: 12, nEmbd: 768 };
const model = new GPT2({ config, ops, seed: 1, paramDType: 'float32', computeDType: 'bfloat16' });
const opt = new AdamW(ops, model.specs, model.paramsLength);
const rng = createRng(3);
const x = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)); // (B, T)
const step = async () => {
  await model.zeroGrad();
  await model.forward(x, x, B, T, true);
  await model.backward();
  await clipGradNorm(ops, model.grads, 1.0);
  await opt.step(model.params, model.grads, 6e-4);
  await model.syncParams();
};
for (let i = 0; i < 3; i++) await step();
calls = {};
const t0 = performance.now();
for (let i = 0; i < N; i++) await step();
const ms = (performance.now() - t0) / N;
const n = Object.values(calls).reduce((a, b) => a + b, 0) / N;
console.log(
  `GPT-2 124M B=${B} T=${T} bf16 on CudaOps over a no-op addon: host ${ms.toFixed(2)} ms/step, ` +
    `${n} native calls/step, ${((1000 * ms) / n).toFixed(1)} us per call`,
);
console.log(
  Object.entries(calls)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v / N}`)
    .join(', '),
);
