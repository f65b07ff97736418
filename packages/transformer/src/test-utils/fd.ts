/**
 * Central finite differences in float64. With h = 1e-5 the truncation error is ~h^2 |f'''| / 6 ~ 1e-11
 * and the rounding error ~eps |f| / h ~ 1e-10 for the O(1..10) losses used here, so an analytic
 * gradient that is right agrees to ~1e-8; FD_TOL = 1e-6 (relative to 1 + |g|) leaves two orders of
 * margin while a wrong term (errors of O(|g|)) still fails.
 */
import { createRng } from '@flashattn/core';

export const FD_H = 1e-5;
export const FD_TOL = 1e-6;

export interface FdReport {
  maxErr: number;
  worst: number;
  checked: number;
}

/** Compare analytic[i] with (f(x + h e_i) - f(x - h e_i)) / 2h for the given indices (default all). */
export async function finiteDiff(
  x: Float64Array,
  f: () => Promise<number> | number,
  analytic: ArrayLike<number>,
  indices?: number[],
): Promise<FdReport> {
  let maxErr = 0;
  let worst = -1;
  const idx = indices ?? Array.from({ length: x.length }, (_, i) => i);
  for (const i of idx) {
    const save = x[i]!;
    x[i] = save + FD_H;
    const fp = await f();
    x[i] = save - FD_H;
    const fm = await f();
    x[i] = save;
    const num = (fp - fm) / (2 * FD_H);
    const err = Math.abs(num - analytic[i]!) / (1 + Math.abs(analytic[i]!));
    if (err > maxErr) {
      maxErr = err;
      worst = i;
    }
  }
  return { maxErr, worst, checked: idx.length };
}

export function randn64(n: number, seed: number, std = 1): Float64Array {
  const rng = createRng(seed);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
