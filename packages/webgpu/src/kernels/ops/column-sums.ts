/**
 * The frame of the per-column reductions (bias backward, LayerNorm's dw / db): a workgroup of
 * COLS x LANES invocations owns COLS adjacent columns of one chunk of rows; lane l sums the chunk's
 * rows l, l + LANES, ... in order, then the LANES partials of a column are added in a fixed tree.
 * Deterministic, no atomics; coalesced reads (neighbouring invocations read neighbouring columns).
 *
 * Up to CHUNK_ROWS rows, one pass stores the sums (dispatch (column groups, 1)). Taller inputs (GPT-2's
 * B T = 8192 rows) would leave a C = 768 bias with 24 workgroups each walking 1024 rows per lane,
 * latency-bound; so they run one workgroup per (column group, chunk of CHUNK_ROWS rows) writing
 * partials (chunks, k, cols) to a scratch, and column-partials-add sums the chunks in order.
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { opProgram } from './op-program.js';

export const COLS = 32;
export const LANES = 8;
/** Rows per workgroup of the chunked pass. */
export const CHUNK_ROWS = 256;

/**
 * A kernel body: for column j < p.cols, `term(q)` (row r, column j in scope) summed over the rows
 * r < p.rows of chunk wg.y (rows [wg.y p.chunk, (wg.y + 1) p.chunk)), each sum handed to `store(q)` with
 * the sum in part[q][lid] and the chunk in `chunk`. `k` sums at once.
 */
export function columnSumsMain(
  k: number,
  term: (q: number) => string,
  store: (q: number) => string,
  prologue = '',
): string {
  const qs = Array.from({ length: k }, (_, q) => q);
  return `var<workgroup> part: array<array<f32, ${COLS * LANES}>, ${k}>;
@compute @workgroup_size(${COLS * LANES})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let col = lid % ${COLS}u;
  let lane = lid / ${COLS}u;
  let j = wg.x * ${COLS}u + col;
  let chunk = wg.y;
  let r1 = min(p.rows, (chunk + 1u) * p.chunk);
${qs.map((q) => `  var s${q} = 0.0;\n`).join('')}  if (j < p.cols) {
    for (var r = chunk * p.chunk + lane; r < r1; r += ${LANES}u) {
${prologue}${qs.map((q) => `      s${q} += ${term(q)};\n`).join('')}    }
  }
${qs.map((q) => `  part[${q}][lid] = s${q};\n`).join('')}  workgroupBarrier();
  for (var h = ${LANES / 2}u; h > 0u; h >>= 1u) {
    if (lane < h) {
${qs.map((q) => `      part[${q}][lid] += part[${q}][lid + h * ${COLS}u];\n`).join('')}    }
    workgroupBarrier();
  }
  if (lane == 0u && j < p.cols) {
${qs.map((q) => `    ${store(q)}\n`).join('')}  }
}
`;
}

/** Uniforms of a columnSumsMain kernel. */
export const COLUMN_UNIFORMS = [
  { name: 'rows', type: 'u32' as const },
  { name: 'cols', type: 'u32' as const },
  { name: 'chunk', type: 'u32' as const, comment: 'rows per workgroup (wg.y)' },
];

/** Column groups (x) and row chunks (y; 1 when rows <= CHUNK_ROWS). */
export function columnDispatch(rows: number, cols: number): [number, number, number] {
  return [Math.ceil(cols / COLS), rows > CHUNK_ROWS ? Math.ceil(rows / CHUNK_ROWS) : 1, 1];
}

/** Store of sum q: into the output (`direct`), or into partials (chunks, k, cols) at this chunk. */
export function columnStore(k: number, q: number, direct: string | null): string {
  return direct ?? `st_partials((chunk * ${k}u + ${q}u) * p.cols + j, part[${q}][lid]);`;
}

/**
 * out_q[j] += sum over chunks c (in order) of partials[(c k + q) cols + j], q < k, one invocation per
 * column. Operands: out0 [, out1] (written), partials.
 */
export function columnPartialsAddProgram(
  bound: BoundOperands,
  k: number,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  const qs = Array.from({ length: k }, (_, q) => q);
  return opProgram({
    name: 'column-partials-add',
    variant: `k${k}`,
    bound,
    uniforms: [
      { name: 'chunks', type: 'u32' },
      { name: 'cols', type: 'u32' },
    ],
    dispatch,
    body: `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let j = wg.x * 256u + lid;
  if (j >= p.cols) { return; }
${qs
  .map(
    (q) => `  var s${q} = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s${q} += ld_partials((c * ${k}u + ${q}u) * p.cols + j); }
  st_out${q}(j, ld_out${q}(j) + s${q});
`,
  )
  .join('')}}
`,
  });
}
