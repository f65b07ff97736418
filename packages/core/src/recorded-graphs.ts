/**
 * `withRecordedGraphs(ops)`: core's `OpsGraphs` for a backend without native graphs (the CPU backends, the float64
 * reference). The returned ops are `ops` with `captureGraph` / `launchGraph` / `freeGraph`: while `record` runs,
 * each op call is kept (its arguments as they were, so scalars are frozen as a CUDA graph freezes them) instead of
 * run, and a launch runs the kept calls in order. Calls a capture may not contain (host transfers, waits,
 * allocation, free, dispose) throw `captureRefusal` and abandon the capture, as on the GPU. Build the model on the
 * returned object: only calls made through it are recorded.
 */
import { captureRefusal, type OpsGraph, type OpsGraphs } from './contracts/device-step.js';
import type { Ops } from './contracts/ops.js';
import { OpsInputError } from './errors.js';

/** Calls that read or write host memory, wait, allocate or free: refused while recording. */
const REFUSED = new Set(['upload', 'download', 'sum', 'sumSquares', 'alloc', 'free', 'dispose']);
/** Calls that only describe buffers: run at once even while recording. */
const IMMEDIATE = new Set(['view', 'lengthOf', 'dtypeOf', 'computeDType']);

interface Recording extends OpsGraph {
  readonly calls: ReadonlyArray<() => unknown>;
}

export function withRecordedGraphs<Buf, O extends Ops<Buf>>(ops: O): O & OpsGraphs {
  let recording: Array<() => unknown> | null = null;
  let refused: OpsInputError | null = null;
  const live = new WeakSet<OpsGraph>();
  const own = (op: string, g: OpsGraph): Recording => {
    if (!live.has(g))
      throw new OpsInputError(
        `${op} g`,
        'a live graph from this ops captureGraph',
        'another or a freed one',
      );
    return g as Recording;
  };
  const graphs: OpsGraphs = {
    async captureGraph(record) {
      if (recording !== null)
        throw new OpsInputError(
          'captureGraph',
          'no capture inside a capture',
          'a nested captureGraph',
        );
      const calls: Array<() => unknown> = [];
      recording = calls;
      refused = null;
      try {
        await record();
      } finally {
        recording = null;
      }
      // a refused call abandons the capture even where `record` caught its error
      if (refused !== null) throw refused;
      const g: Recording = { nodes: calls.length, calls };
      live.add(g);
      return g;
    },
    async launchGraph(g) {
      if (recording !== null) throw captureRefusal('launchGraph');
      for (const call of own('launchGraph', g).calls) await call();
    },
    freeGraph(g) {
      own('freeGraph', g);
      live.delete(g);
    },
  };
  return new Proxy(ops, {
    get(target, prop) {
      if (prop === 'captureGraph' || prop === 'launchGraph' || prop === 'freeGraph')
        return graphs[prop];
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        if (recording === null || IMMEDIATE.has(prop)) return fn.apply(target, args);
        if (REFUSED.has(prop)) throw (refused = captureRefusal(prop));
        recording.push(() => fn.apply(target, args));
        return undefined;
      };
    },
  }) as O & OpsGraphs;
}
