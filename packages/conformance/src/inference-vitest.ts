/**
 * `describeInferenceConformance`: register the KV-cache, combine and varlen scenarios (kv-cache.ts,
 * varlen.ts) in a backend package's vitest run, one test per scenario, on a device created once.
 *
 *   describeInferenceConformance('cpu', () => new CpuOps({ threads: 2 }));
 */
import { freshSeed, type DType } from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { readConformanceEnv } from './env.js';
import {
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runCombineScenario,
  runKvCacheRejections,
  runKvCacheScenario,
  type InferenceResult,
  type KvCacheDevice,
} from './kv-cache.js';
import {
  VARLEN_SCENARIOS,
  runVarlenRejections,
  runVarlenScenario,
  type VarlenDevice,
} from './varlen.js';

export interface DescribeInferenceConformanceOptions {
  /** Run seed; default FLASHATTN_CONFORMANCE_SEED, else a fresh one. Printed in the suite title. */
  seed?: number;
  /** Skip the varlen scenarios (a backend with the KV cache only). */
  varlen?: boolean;
  /** When set, every scenario is registered as skipped and this reason is printed. */
  skip?: string;
  /** Per-test timeout in ms (default 120 s). */
  timeoutMs?: number;
}

export function describeInferenceConformance<Buf>(
  name: string,
  createDevice: () =>
    | Promise<
        KvCacheDevice<Buf> & Partial<VarlenDevice<Buf>> & { dispose?(): void | Promise<void> }
      >
    | (KvCacheDevice<Buf> & Partial<VarlenDevice<Buf>> & { dispose?(): void | Promise<void> }),
  opts: DescribeInferenceConformanceOptions = {},
): void {
  const env = readConformanceEnv();
  const seed = (opts.seed ?? env.seed ?? freshSeed()) >>> 0;
  const title = `inference conformance ${name} seed=${seed}`;
  const timeout = opts.timeoutMs ?? 120_000;
  const withVarlen = opts.varlen ?? true;
  if (opts.skip !== undefined) {
    console.warn(`${title}: skipped: ${opts.skip}`);
    describe.skip(`${title} (skipped: ${opts.skip})`, () => {
      it('all scenarios', () => undefined);
    });
    return;
  }
  describe(title, () => {
    let device: ReturnType<typeof createDevice> | undefined;
    const get = async () => await (device ??= createDevice());
    afterAll(async () => {
      if (device) await (await device).dispose?.();
    });
    const supported = (dev: KvCacheDevice<Buf>, dtype: DType): string | undefined =>
      dev.kvCacheCapabilities.dtypes.includes(dtype) && dev.dtypes.includes(dtype)
        ? undefined
        : `${dev.name ?? name} does not support ${dtype}`;
    const report = (r: InferenceResult) => {
      console.log(r.message.split('\n')[0]);
      expect(r.pass, r.message).toBe(true);
    };
    for (const s of KV_CACHE_SCENARIOS) {
      it(
        s.id,
        async (ctx) => {
          const dev = await get();
          const why = supported(dev, s.dtype);
          if (why) ctx.skip(why);
          report(await runKvCacheScenario(dev, s, seed));
        },
        timeout,
      );
    }
    for (const s of COMBINE_SCENARIOS) {
      it(s.id, async () => report(await runCombineScenario(await get(), s, seed)), timeout);
    }
    it('kv rejections: typed errors naming the argument, nothing written', async () => {
      report(await runKvCacheRejections(await get(), seed));
    });
    if (!withVarlen) return;
    for (const s of VARLEN_SCENARIOS) {
      it(
        s.id,
        async (ctx) => {
          const dev = (await get()) as unknown as VarlenDevice<Buf> & KvCacheDevice<Buf>;
          const why = supported(dev, s.dtype);
          if (why) ctx.skip(why);
          report(await runVarlenScenario(dev, s, seed));
        },
        timeout,
      );
    }
    it('varlen rejections: typed errors naming the argument, nothing written', async () => {
      report(await runVarlenRejections((await get()) as unknown as VarlenDevice<Buf>, seed));
    });
  });
}
