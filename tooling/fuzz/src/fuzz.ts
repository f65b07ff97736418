/**
 * One harness for every fuzz test: fast-check with a seed that is printed (and can be replayed with
 * FLASHATTN_FUZZ_SEED=<seed>), a case count scaled by FLASHATTN_FUZZ_SCALE (default 1; CI's budget is
 * about a minute for all files together on 2 cores), and a line per property with the cases run.
 */
import fc from 'fast-check';
import { InputError } from '@flashattn/core';

const envSeed = process.env.FLASHATTN_FUZZ_SEED;
/** This run's seed: fresh each run unless FLASHATTN_FUZZ_SEED replays one. */
export const SEED =
  envSeed !== undefined ? Number(envSeed) >>> 0 : (Date.now() ^ (Math.random() * 2 ** 32)) >>> 0;
const SCALE = Math.max(0.01, Number(process.env.FLASHATTN_FUZZ_SCALE ?? '1') || 1);

/** Run `check` on `runs` generated cases; print the count and seed; fail with fast-check's counterexample. */
export async function fuzz<T>(
  name: string,
  arb: fc.Arbitrary<T>,
  runs: number,
  check: (value: T) => Promise<void> | void,
): Promise<number> {
  const numRuns = Math.max(1, Math.round(runs * SCALE));
  let cases = 0;
  const t0 = performance.now();
  try {
    await fc.assert(
      fc.asyncProperty(arb, async (v) => {
        cases++;
        await check(v);
      }),
      { seed: SEED, numRuns, endOnFailure: true },
    );
  } finally {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `fuzz ${name}: ${cases} cases in ${s} s, seed ${SEED} (replay: FLASHATTN_FUZZ_SEED=${SEED})`,
    );
  }
  return cases;
}

/**
 * Run f, which must throw an error of class `type` whose `argument` starts with one of `names`
 * (the argument the case broke). Anything else, success included, fails the case with a message.
 */
export async function expectInputError(
  f: () => unknown,
  type: abstract new (...a: never[]) => InputError,
  names: readonly string[],
  what: string,
): Promise<void> {
  let result: unknown;
  try {
    result = await f();
  } catch (e) {
    if (!(e instanceof type))
      throw new Error(
        `${what}: expected ${type.name} naming ${names.join(' or ')}, got ${String(e)}`,
        { cause: e },
      );
    const arg = (e as InputError).argument;
    if (
      !names.some(
        (n) =>
          arg === n ||
          arg.startsWith(n + '.') ||
          arg.startsWith(n + '[') ||
          arg.startsWith(n + ' '),
      )
    )
      throw new Error(
        `${what}: ${type.name} names '${arg}', expected ${names.join(' or ')} (${e.message})`,
      );
    if (!e.message.includes(arg))
      throw new Error(`${what}: the message does not name '${arg}': ${e.message}`);
    return;
  }
  throw new Error(
    `${what}: expected ${type.name} naming ${names.join(' or ')}, but the call succeeded (${String(result)})`,
  );
}
