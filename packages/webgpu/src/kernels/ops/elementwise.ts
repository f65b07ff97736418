/**
 * The shared frame of the elementwise kernels (one invocation per element i < p.n over a 2-D grid of
 * OPS_WG-wide workgroups; operands.ts grid()).
 */
import { LINEAR_WG, MAIN_ARGS, OPS_WG } from './op-program.js';

export function elementwiseMain(body: string): string {
  return `@compute @workgroup_size(${OPS_WG})
fn main(${MAIN_ARGS}) {
  ${LINEAR_WG}
  let i = wgi * ${OPS_WG}u + lid;
  if (i >= p.n) { return; }
${body}
}
`;
}

/** Workgroups for n elements. */
export const elementwiseGroups = (n: number): number => Math.ceil(n / OPS_WG);
