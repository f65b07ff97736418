/**
 * Embedding backward without float atomics (WGSL has none), deterministic:
 *   dwpe (T, C) += sum_b dout[b, t]: one invocation per (t, c), b in order;
 *   dwte (V, C) += dout rows grouped by token, "first occurrence owns the row": workgroup i (one per
 *   position of the B*T tokens) checks whether tokens[i] occurs at an earlier position; if not, it sums
 *   dout[j] over all j >= i with tokens[j] == tokens[i], in order of j, and adds that to dwte[tokens[i]].
 *   Each touched row is written by exactly one workgroup, in a fixed order: no sort, no atomics. The
 *   token scans cost O((B T)^2) integer compares (67M for B T = 8192: ~0.1 ms on a large GPU), read
 *   through workgroup memory in chunks of EMB_WG tokens.
 * Tokens outside [0, V) are skipped (the forward makes their loss NaN).
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { elementwiseMain } from './elementwise.js';
import { LINEAR_WG, MAIN_ARGS, opProgram } from './op-program.js';

export const EMB_WG = 256;

/** Operands: dwpe (written), dout. One invocation per element of dwpe's first T rows. */
export function embeddingBackwardPositionProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'embedding-backward-wpe',
    bound,
    uniforms: [
      { name: 'n', type: 'u32', comment: 'T * C' },
      { name: 'B', type: 'u32' },
    ],
    dispatch,
    body: elementwiseMain(`  var s = 0.0;
  for (var b = 0u; b < p.B; b++) { s += ld_dout(b * p.n + i); }
  st_dwpe(i, ld_dwpe(i) + s);`),
  });
}

/** Operands: dwte (written), dout, tokens. Dispatch: one workgroup per token position (B*T). */
export function embeddingBackwardTokenProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'embedding-backward-wte',
    bound,
    uniforms: [
      { name: 'BT', type: 'u32' },
      { name: 'C', type: 'u32' },
      { name: 'V', type: 'u32' },
    ],
    dispatch,
    body: `var<workgroup> toks: array<i32, ${EMB_WG}>;
var<workgroup> wtok: i32;
var<workgroup> earlier: u32;
@compute @workgroup_size(${EMB_WG})
fn main(${MAIN_ARGS}) {
  ${LINEAR_WG}
  if (wgi >= p.BT) { return; }
  if (lid == 0u) { wtok = ldi_tokens(wgi); earlier = 0u; }
  let tok = workgroupUniformLoad(&wtok);
  if (tok < 0 || u32(tok) >= p.V) { return; }
  // Does tok occur at a position before wgi? (Racing stores all write 1.)
  for (var j = lid; j < wgi; j += ${EMB_WG}u) {
    if (ldi_tokens(j) == tok) { earlier = 1u; }
  }
  if (workgroupUniformLoad(&earlier) != 0u) { return; }
  // This workgroup owns row tok: sum dout over its occurrences j >= wgi, in order.
  let cPer = (p.C + ${EMB_WG - 1}u) / ${EMB_WG}u;
  for (var c0 = 0u; c0 < cPer; c0++) {
    let c = c0 * ${EMB_WG}u + lid;
    var s = 0.0;
    for (var j0 = wgi; j0 < p.BT; j0 += ${EMB_WG}u) {
      workgroupBarrier();
      if (j0 + lid < p.BT) { toks[lid] = ldi_tokens(j0 + lid); }
      workgroupBarrier();
      let cnt = min(${EMB_WG}u, p.BT - j0);
      for (var q = 0u; q < cnt; q++) {
        if (toks[q] == tok && c < p.C) { s += ld_dout((j0 + q) * p.C + c); }
      }
    }
    if (c < p.C) { st_dwte(u32(tok) * p.C + c, ld_dwte(u32(tok) * p.C + c) + s); }
  }
}
`,
  });
}
