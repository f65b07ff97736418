import { unitRoundoff } from '../dtype.js';
import { describe, expect, it } from 'vitest';
import {
  allowedError,
  errorRatio,
  NAIVE_ERROR_FACTOR,
  toleranceFor,
  withinTolerance,
} from './tolerance.js';

const u32 = 2 ** -24;

describe('the tolerance rule: err <= 2 * err_naive + u(c) max|X| + u32 max|X|_abs + R_X', () => {
  it('derives the floor from the unit roundoffs and the magnitudes', () => {
    expect(toleranceFor('float32', { output: 4, abs: 0 }).floor).toBe(4 * 2 ** -24);
    expect(toleranceFor('float16', { output: 4, abs: 0 }).floor).toBe(4 * 2 ** -11);
    expect(toleranceFor('bfloat16', { output: 4, abs: 0 }).floor).toBe(4 * 2 ** -8);
    // The accumulation term always uses float32's u, whatever the compute dtype.
    expect(toleranceFor('bfloat16', { output: 0, abs: 64 }).floor).toBe(64 * u32);
    const t = toleranceFor('float16', { output: 2, abs: 8, recompute: 0.5 });
    expect(t.rounding).toBe(2 * 2 ** -11);
    expect(t.accumulation).toBe(8 * u32);
    expect(t.recompute).toBe(0.5);
    expect(t.floor).toBe(2 * 2 ** -11 + 8 * u32 + 0.5);
    expect(t.unitRoundoff).toBe(unitRoundoff('float16'));
    expect(NAIVE_ERROR_FACTOR).toBe(2);
  });

  it('passes at exactly 2x naive + floor and fails just above', () => {
    const tol = toleranceFor('float16', { output: 8, abs: 0 }); // floor = 8 * 2^-11 = 2^-8
    const errNaive = 1e-3;
    const limit = 2 * errNaive + 2 ** -8;
    expect(allowedError(tol, errNaive)).toBe(limit);
    expect(withinTolerance(limit, errNaive, tol)).toBe(true);
    expect(withinTolerance(limit * (1 + 1e-12), errNaive, tol)).toBe(false);
  });

  it('a zero naive error leaves only the floor; a zero floor demands at most 2x naive', () => {
    // A row that sees one key: naive exact, oracle 0, a fused kernel off by an ulp of the terms.
    expect(withinTolerance(1e-9, 0, toleranceFor('float32', { output: 0, abs: 1 }))).toBe(true);
    expect(withinTolerance(1e-7, 0, toleranceFor('float32', { output: 0, abs: 1 }))).toBe(false);
    const none = toleranceFor('float32', { output: 0, abs: 0 });
    expect(withinTolerance(2e-3, 1e-3, none)).toBe(true);
    expect(withinTolerance(2.1e-3, 1e-3, none)).toBe(false);
  });

  it('NaN and Infinity never pass', () => {
    const tol = toleranceFor('bfloat16', { output: 100, abs: 100 });
    expect(withinTolerance(NaN, 1, tol)).toBe(false);
    expect(withinTolerance(Infinity, 1, tol)).toBe(false);
  });

  it('rejects a bad magnitude instead of producing a meaningless floor', () => {
    expect(() => toleranceFor('float32', { output: NaN, abs: 0 })).toThrow(/'output'/);
    expect(() => toleranceFor('float32', { output: 1, abs: -1 })).toThrow(/'abs'/);
    expect(() => toleranceFor('float32', { output: 1, abs: 1, recompute: Infinity })).toThrow(
      /'recompute'/,
    );
  });

  it('reports the ratio err_backend / err_naive', () => {
    expect(errorRatio(3, 2)).toBe(1.5);
    expect(errorRatio(0, 0)).toBe(0);
    expect(errorRatio(1, 0)).toBe(Infinity);
  });
});
