/**
 * The varlen route (inference/varlen.ts) against deliberately broken variants: the suite's varlen
 * scenarios must catch a backward that ignores the causal mask and a forward that ignores the sliding
 * window, and the real backend passes the same scenario and seed (so the failures are the faults, not
 * the setup).
 */
import { runVarlenScenario, VARLEN_SCENARIOS, type VarlenDevice } from '@flashattn/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { createWebGPUBackend, type WebGPUAttentionBackend, type WebGPUBuffer } from '../index.js';
import { defaultToSwiftShader, probeAdapter } from '../test-utils/env.js';

defaultToSwiftShader();
const unavailable = await probeAdapter();
const why = unavailable !== undefined ? `no WebGPU adapter: ${unavailable}` : undefined;
if (why) console.warn(`varlen.test.ts skipped: ${why}`);

describe.skipIf(why !== undefined)('webgpu varlen: broken variants fail the suite', () => {
  let be: WebGPUAttentionBackend | undefined;
  const get = async () => (be ??= await createWebGPUBackend());
  afterAll(() => be?.dispose());
  // (the causal fault on a scenario without a window: window [4, 0] alone already ends at the diagonal)
  const scenario = (name: string) => VARLEN_SCENARIOS.find((s) => s.id.includes(name))!;

  const broken: Array<[string, string, (d: WebGPUAttentionBackend) => VarlenDevice<WebGPUBuffer>]> =
    [
      [
        'backward without the causal mask',
        'self-packed',
        (d) => ({
          ...d,
          varlenAttentionBackward: (a, o) => d.varlenAttentionBackward(a, { ...o, causal: false }),
        }),
      ],
      [
        'forward without the window',
        'self-window',
        (d) => ({
          ...d,
          varlenAttentionForward: (a, o) => {
            const { windowSize: _dropped, ...rest } = o ?? {};
            return d.varlenAttentionForward(a, rest);
          },
        }),
      ],
    ];
  for (const [what, name, make] of broken) {
    it(`${what} fails; the real backend passes the same scenario and seed`, async () => {
      const r = await runVarlenScenario(make(await get()), scenario(name), 1);
      expect(r.pass, r.message).toBe(false);
      expect(r.message, 'a wrong result, not an exception').not.toMatch(/threw/);
      const ok = await runVarlenScenario(await get(), scenario(name), 1);
      expect(ok.pass, ok.message).toBe(true);
    });
  }
});
