/**
 * Deliberately wrong backends, each wrapping a correct one, to prove the suite can fail.
 */
import {
  fromFloat32,
  toFloat32,
  type AttentionBackend,
  type AttentionOptions,
  type Tensor,
} from '@flashattn/core';

type Fault =
  | 'wrong-scale'
  | 'out-perturbed'
  | 'lse-off'
  | 'masked-rows-nan'
  | 'dv-perturbed'
  | 'masked-lse-zero'
  | 'gqa-head-mapping'
  | 'causal-top-left'
  | 'nan-zeroed'
  | 'nan-leaks';

/**
 * Reorder the heads of a (B, N, H, D) tensor: head h of the result is head from(h) of t.
 */
function permuteHeads(t: Tensor, from: (h: number) => number): Tensor {
  const [B, N, H, D] = t.shape as [number, number, number, number];
  const src = toFloat32(t);
  const dst = new Float32Array(src.length);
  for (let bn = 0; bn < B * N; bn++) {
    for (let h = 0; h < H; h++)
      dst.set(src.subarray((bn * H + from(h)) * D, (bn * H + from(h) + 1) * D), (bn * H + h) * D);
  }
  return fromFloat32(dst, t.shape, t.dtype);
}

function perturb(t: Tensor, index: number, delta: number): Tensor {
  const f = Float32Array.from(toFloat32(t));
  f[index % f.length]! += delta;
  return fromFloat32(f, t.shape, t.dtype);
}

/** `inner` with one fault injected; name `broken(<fault>)`. */
export function brokenBackend(inner: AttentionBackend, fault: Fault): AttentionBackend {
  return {
    name: `broken(${fault})`,
    capabilities: inner.capabilities,
    async forward(q, k, v, opts?: AttentionOptions) {
      if (fault === 'wrong-scale') {
        // Forgets the 1/sqrt(D) default and uses 1.1x of it.
        const scale = 1.1 / Math.sqrt(q.shape[3]!);
        return inner.forward(q, k, v, { ...opts, softmaxScale: scale });
      }
      if (fault === 'gqa-head-mapping') {
        // Query head h reads kv head h % Hk instead of floor(h / group): run the correct backend on
        // q with head h moved to slot pi(h) = (h % Hk) * group + floor(h / Hk), then move it back.
        const Hq = q.shape[2]!;
        const Hk = k.shape[2]!;
        const g = Hq / Hk;
        const pi = (h: number): number => (h % Hk) * g + Math.floor(h / Hk);
        const inv = new Array<number>(Hq);
        for (let h = 0; h < Hq; h++) inv[pi(h)] = h;
        const r = await inner.forward(
          permuteHeads(q, (slot) => inv[slot]!),
          k,
          v,
          opts,
        );
        const [B, Nq] = q.shape as [number, number];
        const lse = new Float32Array(r.lse.length);
        for (let b = 0; b < B; b++) {
          for (let h = 0; h < Hq; h++)
            lse.set(
              r.lse.subarray((b * Hq + pi(h)) * Nq, (b * Hq + pi(h) + 1) * Nq),
              (b * Hq + h) * Nq,
            );
        }
        return { out: permuteHeads(r.out, pi), lse };
      }
      if (fault === 'causal-top-left' && opts?.causal) {
        // Causal aligned top-left (row i sees keys j <= i) instead of bottom-right, for Nq > Nk:
        // the bottom-right window [-1, Nq - Nk] is exactly that.
        const shift = q.shape[1]! - k.shape[1]!;
        return inner.forward(q, k, v, { ...opts, causal: false, windowSize: [-1, shift] });
      }
      const r = await inner.forward(q, k, v, opts);
      if (fault === 'nan-zeroed' || fault === 'nan-leaks') {
        // nan-zeroed: NaN scrubbed to 0 (a nan_to_num or fmax in the epilogue); nan-leaks: a NaN key
        // reaches every row (a mask added as a -inf bias, -inf + NaN = NaN, instead of a select).
        const out = Float32Array.from(toFloat32(r.out));
        const any = out.some((x) => Number.isNaN(x));
        for (let i = 0; i < out.length; i++) {
          if (fault === 'nan-zeroed' && Number.isNaN(out[i]!)) out[i] = 0;
          if (fault === 'nan-leaks' && any) out[i] = NaN;
        }
        return { out: fromFloat32(out, q.shape, q.dtype), lse: r.lse };
      }
      if (fault === 'out-perturbed') return { out: perturb(r.out, 7, 0.25), lse: r.lse };
      if (fault === 'lse-off')
        return { out: r.out, lse: r.lse.map((x) => (Number.isFinite(x) ? x + 0.1 : x)) };
      if (fault === 'masked-rows-nan' || fault === 'masked-lse-zero') {
        // The classic bug: a row that saw no key computes 0/0 and log(0) - (-Inf) instead of 0 and -Inf.
        const D = q.shape[3]!;
        const out = Float32Array.from(toFloat32(r.out));
        const lse = Float32Array.from(r.lse);
        const [B, Nq, Hq] = q.shape as [number, number, number];
        for (let b = 0; b < B; b++) {
          for (let h = 0; h < Hq; h++) {
            for (let i = 0; i < Nq; i++) {
              const li = (b * Hq + h) * Nq + i;
              if (lse[li] !== -Infinity) continue;
              if (fault === 'masked-lse-zero') lse[li] = 0;
              else out.fill(NaN, ((b * Nq + i) * Hq + h) * D, ((b * Nq + i) * Hq + h + 1) * D);
            }
          }
        }
        return { out: fromFloat32(out, q.shape, q.dtype), lse };
      }
      return r;
    },
    async backward(dout, q, k, v, out, lse, opts?: AttentionOptions) {
      const g = await inner.backward(dout, q, k, v, out, lse, opts);
      if (fault === 'dv-perturbed') return { ...g, dv: perturb(g.dv, 3, 0.25) };
      return g;
    },
    dispose: () => inner.dispose(),
  };
}
