/**
 * Axis scales: the data domain, tick positions and tick labels for linear and log10 axes.
 */

export interface Scale {
  /** Domain ends in data units (positive for log axes). */
  min: number;
  max: number;
  log: boolean;
  ticks: number[];
  /** Data value -> fraction of the axis in [0, 1]. */
  frac(v: number): number;
}

/** The step among {1, 2, 5} x 10^k closest to span / target (rounded up). */
export function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Linear scale over [lo, hi] widened to whole tick steps. */
export function linearScale(lo: number, hi: number, target = 6, fixedTicks?: readonly number[]): Scale {
  if (!(hi > lo)) {
    // A single value (or none): centre it in a unit-wide window.
    const c = Number.isFinite(lo) ? lo : 0;
    const half = c === 0 ? 1 : Math.abs(c) * 0.5;
    lo = c - half;
    hi = c + half;
  }
  let min: number;
  let max: number;
  let ticks: number[];
  if (fixedTicks && fixedTicks.length > 0) {
    min = Math.min(lo, ...fixedTicks);
    max = Math.max(hi, ...fixedTicks);
    ticks = [...fixedTicks];
  } else {
    const step = niceStep(hi - lo, target);
    min = Math.floor(lo / step) * step;
    max = Math.ceil(hi / step) * step;
    ticks = [];
    for (let i = 0; min + i * step <= max + step * 1e-9; i++) ticks.push(cleanFloat(min + i * step));
  }
  return { min, max, log: false, ticks, frac: (v) => (v - min) / (max - min) };
}

/** log10 scale over [lo, hi] (both > 0), padded a little on both sides. */
export function logScale(lo: number, hi: number, fixedTicks?: readonly number[]): Scale {
  if (!(lo > 0) || !(hi > 0)) {
    lo = 1;
    hi = 10;
  }
  if (!(hi > lo)) {
    lo /= 2;
    hi *= 2;
  }
  const decades = Math.log10(hi) - Math.log10(lo);
  // Pad 4% of the span (at least 0.02 decades) on each side, in log space.
  const pad = 0.04 * Math.max(decades, 0.5);
  const l0 = Math.log10(lo) - pad;
  const l1 = Math.log10(hi) + pad;
  const min = 10 ** l0;
  const max = 10 ** l1;
  let ticks: number[];
  if (fixedTicks && fixedTicks.length > 0) {
    ticks = fixedTicks.filter((t) => t > 0);
  } else {
    // Powers of ten; with fewer than 3 decades also 2x and 5x multiples.
    const mults = decades < 3 ? [1, 2, 5] : [1];
    ticks = [];
    for (let e = Math.floor(l0) - 1; e <= Math.ceil(l1); e++) {
      for (const m of mults) {
        const t = cleanFloat(m * 10 ** e);
        if (t >= min * (1 - 1e-9) && t <= max * (1 + 1e-9)) ticks.push(t);
      }
    }
    // A narrow range may hold fewer than two of those: use evenly spaced nice values instead.
    if (ticks.length < 2) ticks = linearScale(lo, hi, 4).ticks.filter((t) => t >= min && t <= max && t > 0);
  }
  const dMin = Math.min(min, ...ticks);
  const dMax = Math.max(max, ...ticks);
  const a = Math.log10(dMin);
  const b = Math.log10(dMax);
  return { min: dMin, max: dMax, log: true, ticks, frac: (v) => (Math.log10(v) - a) / (b - a) };
}

/** Remove float noise such as 0.30000000000000004. */
function cleanFloat(v: number): number {
  return Number.parseFloat(v.toPrecision(12));
}

/** Short tick label: integers as-is below 1e6, '1e6' style beyond, up to 3 significant digits otherwise. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) {
    const [m, e] = v.toExponential(2).split('e') as [string, string];
    return `${Number.parseFloat(m)}e${Number.parseInt(e, 10)}`;
  }
  if (Number.isInteger(v)) return String(v);
  return String(Number.parseFloat(v.toPrecision(3)));
}
