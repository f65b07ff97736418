// A few GPT-2 training steps on the WebGPU ops give the CPU float32 ops' losses, from the same
// initialisation and batch, under the ops suite's rule lifted to the whole step:
//
//   |L_webgpu - L_64| <= 2 |L_cpu - L_64| + floor,   floor = 1e-5 |L_64|
//
// L_64 is the same training on core's float64 reference ops (the oracle); the CPU float32 ops are the
// same-precision implementation whose error the rule scales (the suite's "naive" baseline: every op of
// both backends passed the suite, so each op's error is at most ~2x a naive float32 op's, and so is
// what they add up to over a step). The floor is the repo's end-to-end float32 floor
// (apps/bench/src/gpt2/parity-rule.ts FLOOR.fp32, transformer's parity test): it covers the CPU run
// landing on the oracle by luck. The same rule holds for the clipped gradient norms. Any real defect
// (a wrong stride, a dropped term, a race) moves the loss by 1e-3 or more and fails it by orders of
// magnitude. The WebGPU run is repeated to check that it is deterministic (no atomics: bit-identical).
import { createReferenceOps, freshSeed, type Ops } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { fitOneBatch, type GPT2Config } from '@flashattn/transformer';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from '../test-utils/env.js';
import { createWebGpuOps, type WebGpuOps } from './webgpu-ops.js';

defaultToSwiftShader();
const unavailable = await probeAdapter();
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`gpt2 training on webgpu ops: skipped: no WebGPU adapter: ${unavailable}`);

// Tiny (a few seconds on SwiftShader): C = 32 with 2 heads of D = 16, T = 16, V = 67 (not a tile multiple).
const config: GPT2Config = { vocabSize: 67, maxSeqLen: 16, nLayer: 2, nHead: 2, nEmbd: 32 };
const [B, T, steps] = [2, 16, 4];
const seed = freshSeed();
const FLOOR_REL = 1e-5;

const train = <Buf>(ops: Ops<Buf>, dtype: 'float32' | 'float64') =>
  fitOneBatch(ops, {
    config,
    batch: B,
    seq: T,
    steps,
    seed,
    dtype,
    lr: 3e-3,
    ignoreEvery: 9,
    ignoreOffset: 4,
  });

let gpu: WebGpuOps | undefined;
const cpu = new CpuOps({ threads: 1 });
afterAll(async () => {
  cpu.dispose();
  await gpu?.dispose();
});

describe.skipIf(skip)(`GPT-2 training on the WebGPU ops (seed ${seed})`, () => {
  it(`${steps} steps give the CPU float32 losses and gradient norms within the suite's rule`, async () => {
    gpu = await createWebGpuOps();
    const ref = await train(createReferenceOps(), 'float64');
    const c = await train(cpu, 'float32');
    const g = await train(gpu, 'float32');
    const again = await train(gpu, 'float32');
    const rows: string[] = [];
    for (let s = 0; s < steps; s++) {
      for (const [what, oracle, ours, peer] of [
        ['loss', ref.losses[s]!, g.losses[s]!, c.losses[s]!],
        ['grad norm', ref.norms[s]!, g.norms[s]!, c.norms[s]!],
      ] as const) {
        const errOurs = Math.abs(ours - oracle);
        const errPeer = Math.abs(peer - oracle);
        const bound = 2 * errPeer + FLOOR_REL * Math.abs(oracle);
        rows.push(
          `step ${s} ${what}: f64 ${oracle.toFixed(7)} webgpu err ${errOurs.toExponential(2)} cpu err ${errPeer.toExponential(2)} bound ${bound.toExponential(2)}`,
        );
        expect(errOurs, `step ${s} ${what}\n${rows.join('\n')}`).toBeLessThanOrEqual(bound);
      }
    }
    console.log(rows.join('\n'));
    // It trains (the loss falls on the fixed batch), and the WebGPU run is bit-for-bit repeatable.
    expect(g.losses[steps - 1]!).toBeLessThan(g.losses[0]! - 0.05);
    expect(again.losses).toEqual(g.losses);
    expect(again.norms).toEqual(g.norms);
  }, 300_000);
});
