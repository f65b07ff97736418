/**
 * Fused softmax cross-entropy, one workgroup per row of logits (N, Vp), classes [0, V) (llm.c's fused
 * classifier; columns [V, Vp) are the padded vocabulary: not read, dlogits 0 there):
 *   m = max_j x_j,  l = sum_j exp(x_j - m),  lse = m + log(l),
 *   losses[i] = lse - x_t,  dlogits[i, j] = (exp(x_j - lse) - [j == t]) * dlossScale  (when HAS_GRAD).
 * t = targets[i] < 0: loss 0 and a zero gradient row. t >= V: the contract lets the device report it
 * late; here the loss is NaN (so the summed loss is NaN) and the gradient row zero.
 * dlogits may be logits (in place): x_t is read before the first barrier and every other element is
 * read by the invocation that later overwrites it, after the last reduction.
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { LINEAR_WG, MAIN_ARGS, NAN_FN, OPS_WG, opProgram, reduceFn } from './op-program.js';

/** Operands: losses (written), [dlogits (written)], logits, targets. Dispatch: one workgroup per row. */
export function softmaxCrossEntropyProgram(
  bound: BoundOperands,
  withGrad: boolean,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'softmax-cross-entropy',
    variant: withGrad ? 'grad' : 'loss',
    bound,
    uniforms: [
      { name: 'N', type: 'u32' },
      { name: 'V', type: 'u32' },
      { name: 'Vp', type: 'u32' },
      { name: 'dlossScale', type: 'f32' },
    ],
    dispatch,
    body: `${NAN_FN}var<workgroup> red: array<f32, ${OPS_WG}>;
${reduceFn('max_wg', (a, b) => `max(${a}, ${b})`)}${reduceFn('sum_wg', (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(${OPS_WG})
fn main(${MAIN_ARGS}) {
  ${LINEAR_WG}
  if (wgi >= p.N) { return; }
  let row = wgi * p.Vp;
  let t = ldi_targets(wgi);
  let valid = t >= 0 && u32(t) < p.V;
  var xt = 0.0;
  if (valid) { xt = ld_logits(row + u32(t)); } // read before any invocation writes (in place)
  var mx = -3.4028234663852886e38;
  for (var j = lid; j < p.V; j += ${OPS_WG}u) { mx = max(mx, ld_logits(row + j)); }
  let m = max_wg(mx, lid);
  var s = 0.0;
  for (var j = lid; j < p.V; j += ${OPS_WG}u) { s += exp(ld_logits(row + j) - m); }
  let lse = m + log(sum_wg(s, lid));
  if (lid == 0u) {
    var loss = 0.0;
    if (valid) { loss = lse - xt; } else if (t >= 0) { loss = nan_f32(); }
    st_losses(wgi, loss);
  }
${
  withGrad
    ? `  for (var j = lid; j < p.Vp; j += ${OPS_WG}u) {
    var g = 0.0;
    if (valid && j < p.V) { g = (exp(ld_logits(row + j) - lse) - select(0.0, 1.0, j == u32(t))) * p.dlossScale; }
    st_dlogits(row + j, g);
  }
`
    : ''
}}
`,
  });
}
