/**
 * The frame of the per-column reductions (bias backward, LayerNorm's dw / db): a workgroup of
 * COLS x LANES invocations owns COLS adjacent columns; lane l sums rows l, l + LANES, ... in order, then
 * the LANES partials of a column are added in a fixed tree. Deterministic, no atomics; coalesced reads
 * (neighbouring invocations read neighbouring columns of a row).
 */
export const COLS = 32;
export const LANES = 8;

/**
 * A kernel body: for column j < p.cols, `term(r, j)` summed over rows r < p.rows, each sum handed to
 * `store(j, s)`. `k` sums at once (`term` and `store` get the index q < k).
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
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let col = lid % ${COLS}u;
  let lane = lid / ${COLS}u;
  let j = (wg.x + wg.y * nw.x) * ${COLS}u + col;
${qs.map((q) => `  var s${q} = 0.0;\n`).join('')}  if (j < p.cols) {
    for (var r = lane; r < p.rows; r += ${LANES}u) {
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

export const columnGroups = (cols: number): number => Math.ceil(cols / COLS);
