/**
 * Embedding backward without float atomics (WGSL has none), deterministic:
 *   dwpe (T, C) += sum_b dout[b, t]: one invocation per (t, c), b in order;
 *   dwte (V, C) += dout rows grouped by token, "first occurrence owns the row", in two passes:
 *   'links': one invocation per position i finds next[i], the next position holding the same token
 *            (BT if none), and whether an earlier position holds it (then i is not the row's owner);
 *            the tokens are streamed through workgroup memory in chunks of EMB_WG, so the O((B T)^2)
 *            compares (67M for B T = 8192) are workgroup-memory reads;
 *   'rows':  one workgroup per position; an owner walks its chain i -> next[i] -> ... (in position
 *            order) summing dout rows, one invocation per column, and adds the sum to dwte[token].
 *   Each touched row is written by exactly one workgroup, in a fixed order: no sort, no atomics, O(B T C)
 *   adds. links (2 B T int32, scratch): [next[i], owner[i] (1 or 0)].
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

/** Operands: links (written, int32 (2 BT)), tokens. One invocation per position (BT). */
export function embeddingBackwardLinksProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'embedding-backward-links',
    bound,
    uniforms: [
      { name: 'BT', type: 'u32' },
      { name: 'V', type: 'u32' },
    ],
    dispatch,
    body: `var<workgroup> toks: array<i32, ${EMB_WG}>;
@compute @workgroup_size(${EMB_WG})
fn main(${MAIN_ARGS}) {
  ${LINEAR_WG}
  let i = wgi * ${EMB_WG}u + lid;
  var tok = -1;
  if (i < p.BT) { tok = ldi_tokens(i); }
  var next = p.BT;
  var owner = 1;
  for (var j0 = 0u; j0 < p.BT; j0 += ${EMB_WG}u) {
    workgroupBarrier();
    if (j0 + lid < p.BT) { toks[lid] = ldi_tokens(j0 + lid); }
    workgroupBarrier();
    let cnt = min(${EMB_WG}u, p.BT - j0);
    for (var q = 0u; q < cnt; q++) {
      let j = j0 + q;
      if (toks[q] == tok) {
        if (j < i) { owner = 0; }
        if (j > i && next == p.BT) { next = j; }
      }
    }
  }
  if (i < p.BT) {
    sti_links(2u * i, i32(next));
    sti_links(2u * i + 1u, select(owner, 0, tok < 0 || u32(tok) >= p.V));
  }
}
`,
  });
}

/** Operands: dwte (written), dout, tokens, links. Dispatch: one workgroup per position (BT). */
export function embeddingBackwardRowsProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'embedding-backward-rows',
    bound,
    uniforms: [
      { name: 'BT', type: 'u32' },
      { name: 'C', type: 'u32' },
    ],
    dispatch,
    body: `@compute @workgroup_size(${EMB_WG})
fn main(${MAIN_ARGS}) {
  ${LINEAR_WG}
  if (wgi >= p.BT || ldi_links(2u * wgi + 1u) == 0) { return; }
  let row = u32(ldi_tokens(wgi)) * p.C;
  for (var c = lid; c < p.C; c += ${EMB_WG}u) {
    var s = 0.0;
    var j = wgi;
    loop {
      s += ld_dout(j * p.C + c);
      j = u32(ldi_links(2u * j));
      if (j >= p.BT) { break; }
    }
    st_dwte(row + c, ld_dwte(row + c) + s);
  }
}
`,
  });
}
