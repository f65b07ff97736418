/**
 * out (B*T, C) = wte[tokens[b, t]] + wpe[t], one invocation per output element. A token outside [0, V)
 * (V = wte's rows; the contract's precondition, checked on the host by the CPU backend) gives a NaN row:
 * reported late through the loss, never a read out of bounds.
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { elementwiseMain } from './elementwise.js';
import { NAN_FN, opProgram } from './op-program.js';

/** Operands: out (written), tokens, wte, wpe. */
export function embeddingForwardProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'embedding-forward',
    bound,
    uniforms: [
      { name: 'n', type: 'u32', comment: 'B * T * C' },
      { name: 'T', type: 'u32' },
      { name: 'C', type: 'u32' },
      { name: 'V', type: 'u32' },
    ],
    dispatch,
    body:
      NAN_FN +
      elementwiseMain(`  let bt = i / p.C;
  let c = i % p.C;
  let t = bt % p.T;
  let tok = ldi_tokens(bt);
  var e = nan_f32();
  if (tok >= 0 && u32(tok) < p.V) { e = ld_wte(u32(tok) * p.C + c); }
  st_out(i, e + ld_wpe(t * p.C + c));`),
  });
}
