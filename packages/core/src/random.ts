/**
 * Seeded random numbers (no Math.random), so a failing test prints a seed that reproduces it.
 */
import type { DType } from './dtype.js';
import { fromFloat32, type Tensor } from './tensor.js';

export interface Rng {
  readonly seed: number;
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** Integer in [0, n). */
  int(n: number): number;
  /** The generator's full state, to checkpoint and restore. */
  state(): number;
  setState(s: number): void;
}

/** mulberry32: a small, fast 32-bit generator; good enough for test data and dropout-free training. */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  let spare: number | undefined;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed: seed >>> 0,
    uniform,
    normal() {
      if (spare !== undefined) {
        const s = spare;
        spare = undefined;
        return s;
      }
      let u = 0;
      while (u === 0) u = uniform();
      const v = uniform();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    int(n) {
      return Math.floor(uniform() * n);
    },
    state() {
      return a;
    },
    setState(s) {
      a = s >>> 0;
      spare = undefined;
    },
  };
}

/** A fresh seed from the clock and a counter, for tests that want new inputs each run. */
let counter = 0;
export function freshSeed(): number {
  return (Date.now() ^ (++counter * 0x9e3779b1)) >>> 0;
}

/** A tensor of N(0, std^2) values rounded to dtype. */
export function randomTensor(rng: Rng, shape: readonly number[], dtype: DType = 'float32', std = 1): Tensor {
  let n = 1;
  for (const s of shape) n *= s;
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = rng.normal() * std;
  return fromFloat32(f, shape, dtype);
}
