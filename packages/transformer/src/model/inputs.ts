/**
 * Checks of the model's host inputs (token and target ids) before they are uploaded: a bad id is a
 * typed error naming its position, never an out-of-range read on a device.
 */
import { OpsInputError } from '@flashattn/core';

/**
 * ids (B*T) must be integers in [0, V) (targets: or negative, meaning "ignore").
 * Returns how many are not ignored (the loss's denominator).
 */
export function checkIds(
  name: string,
  ids: Int32Array,
  n: number,
  V: number,
  allowIgnore: boolean,
): number {
  if (!(ids instanceof Int32Array))
    throw new OpsInputError(`GPT2.forward ${name}`, 'an Int32Array', ids);
  if (ids.length !== n)
    throw new OpsInputError(`GPT2.forward ${name}.length`, `B * T = ${n}`, ids.length);
  let counted = 0;
  for (let i = 0; i < n; i++) {
    const t = ids[i]!;
    if (t >= 0 && t < V) counted++;
    else if (!(allowIgnore && t < 0)) {
      throw new OpsInputError(
        `GPT2.forward ${name}[${i}]`,
        `an id in [0, ${V})${allowIgnore ? ' or < 0 (ignored)' : ''}`,
        t,
      );
    }
  }
  return counted;
}
