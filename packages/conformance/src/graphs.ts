/**
 * runGraphsConformance(ops): what core's OpsGraphs promises (contracts/device-step.ts), checked on any backend that
 * has it (CUDA graphs; withRecordedGraphs over a host backend). Float32 buffers of small integers, so every result
 * is exact in any float32 arithmetic and the checks are equalities:
 *   1. a recording runs nothing: the buffers are as they were after captureGraph;
 *   2. each launch runs the recorded ops once, in order, on the buffers' contents at launch time (a new upload
 *      between launches is seen), with the scalars frozen at capture (a host variable changed afterwards is not);
 *   3. an accumulating op (sumTo with accumulate) accumulates once per launch;
 *   4. a call that may not be recorded (upload, download, sum, alloc) is an OpsInputError, abandons the capture,
 *      and leaves the backend usable: earlier recordings still launch, eager ops still run;
 *   5. a freed recording cannot be launched (OpsInputError).
 * Never throws for a failing backend: the problems are returned.
 */
import { hasDeviceStep, hasOpsGraphs, OpsInputError, type Ops } from '@flashattn/core';
import { valuesOf } from './ops/dtypes.js';

export interface GraphsConformanceReport {
  readonly backend: string;
  readonly pass: boolean;
  /** What was checked, one line each, in order. */
  readonly checked: readonly string[];
  readonly problems: readonly string[];
}

const N = 37; // not a multiple of any tile

export async function runGraphsConformance<Buf>(ops: Ops<Buf>): Promise<GraphsConformanceReport> {
  const checked: string[] = [];
  const problems: string[] = [];
  const report = (): GraphsConformanceReport => ({
    backend: ops.name,
    pass: problems.length === 0,
    checked,
    problems,
  });
  if (!hasOpsGraphs(ops) || !hasDeviceStep(ops)) {
    problems.push(`${ops.name} has no OpsGraphs and DeviceStepOps`);
    return report();
  }
  const owned: Buf[] = [];
  const mk = (n: number): Buf => {
    const b = ops.alloc(n, 'float32');
    owned.push(b);
    return b;
  };
  const get = async (b: Buf): Promise<number[]> =>
    Array.from(valuesOf('float32', await ops.download(b)));
  const ints = (seed: number): Float32Array =>
    Float32Array.from({ length: N }, (_, i) => ((i * 7 + seed * 13) % 11) - 5);
  const same = (what: string, got: number[], want: number[]): void => {
    checked.push(what);
    const at = want.findIndex((w, i) => !Object.is(got[i], w) && !(got[i] === 0 && w === 0));
    if (got.length !== want.length || at >= 0)
      problems.push(
        `${what}: element ${at} is ${got[at]}, expected ${want[at]} (got [${got.slice(0, 6).join(', ')}, ...])`,
      );
  };
  const refused = async (what: string, record: () => Promise<void>): Promise<void> => {
    checked.push(what);
    try {
      await ops.captureGraph(record);
      problems.push(`${what}: captureGraph resolved; expected an OpsInputError`);
    } catch (e) {
      if (!(e instanceof OpsInputError))
        problems.push(`${what}: threw ${String(e)}; expected an OpsInputError`);
    }
  };
  try {
    const x = mk(N);
    const y = mk(N);
    const acc = mk(1);
    await ops.upload(x, ints(1));
    await ops.upload(y, ints(2));
    await ops.upload(acc, Float32Array.of(0.5));
    let s = 2; // a host scalar the recording freezes
    // y = x + y; x = s x; acc += sum(y)
    const g = await ops.captureGraph(async () => {
      await ops.add(y, x, y, N);
      await ops.scale(x, s);
      await ops.sumTo(acc, y, { accumulate: true });
    });
    s = 3;
    same('1. capture runs nothing: x', await get(x), Array.from(ints(1)));
    same('1. capture runs nothing: y', await get(y), Array.from(ints(2)));
    same('1. capture runs nothing: acc', await get(acc), [0.5]);
    // host model of the recording
    let hx = Array.from(ints(1));
    let hy = Array.from(ints(2));
    let hacc = 0.5;
    const run = (): void => {
      hy = hy.map((v, i) => v + hx[i]!);
      hx = hx.map((v) => 2 * v);
      hacc += hy.reduce((a, b) => a + b, 0);
    };
    for (let launch = 1; launch <= 3; launch++) {
      await ops.launchGraph(g);
      run();
      same(`2. launch ${launch}: y = x + y`, await get(y), hy);
      same(`2. launch ${launch}: x = 2 x (the scale frozen at capture, not 3)`, await get(x), hx);
      same(`3. launch ${launch}: acc += sum(y)`, await get(acc), [hacc]);
    }
    await ops.upload(x, ints(5));
    hx = Array.from(ints(5));
    await ops.launchGraph(g);
    run();
    same('2. a launch reads the contents uploaded after capture', await get(y), hy);

    await refused('4. upload inside a capture', async () => {
      await ops.add(y, x, y, N);
      await ops.upload(x, ints(3));
    });
    await refused('4. download inside a capture', async () => {
      await ops.download(x);
    });
    await refused('4. sum inside a capture', async () => {
      await ops.sum(x);
    });
    await refused('4. alloc inside a capture', async () => {
      ops.alloc(4, 'float32');
    });
    same('4. an abandoned capture ran nothing', await get(y), hy);
    await ops.launchGraph(g);
    run();
    same('4. an earlier recording still launches after refused captures', await get(y), hy);
    await ops.add(x, x, x, N);
    hx = hx.map((v) => 2 * v);
    same('4. eager ops still run after refused captures', await get(x), hx);

    ops.freeGraph(g);
    checked.push('5. launching a freed recording');
    try {
      await ops.launchGraph(g);
      problems.push('5. launching a freed recording resolved; expected an OpsInputError');
    } catch (e) {
      if (!(e instanceof OpsInputError))
        problems.push(
          `5. launching a freed recording threw ${String(e)}; expected an OpsInputError`,
        );
    }
  } catch (e) {
    problems.push(`threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  } finally {
    for (const b of owned) {
      try {
        ops.free(b);
      } catch {
        // a freed buffer or a disposed backend: nothing to release
      }
    }
  }
  return report();
}

export function formatGraphsReport(r: GraphsConformanceReport): string {
  return [
    `graphs conformance ${r.backend}: ${r.pass ? 'passed' : 'FAILED'} (${r.checked.length} checks)`,
    ...r.problems.map((p) => `  ${p}`),
  ].join('\n');
}
