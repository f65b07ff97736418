/**
 * Deliberately wrong OpsGraphs over core's reference ops, each with one realistic bug, to prove that
 * runGraphsConformance catches it.
 */
import {
  createReferenceOps,
  withRecordedGraphs,
  type OpsGraph,
  type OpsGraphs,
  type ReferenceOps,
} from '@flashattn/core';

export type GraphsFault = 'runs-at-capture' | 'launch-runs-twice' | 'upload-allowed';

export const GRAPHS_FAULTS: readonly GraphsFault[] = [
  'runs-at-capture',
  'launch-runs-twice',
  'upload-allowed',
];

export function brokenGraphs(fault: GraphsFault): ReferenceOps & OpsGraphs {
  const ref = createReferenceOps();
  const rec = withRecordedGraphs(ref);
  let capturing = false;
  const override: Partial<Record<string, unknown>> = {
    name: `broken-graphs(${fault})`,
  };
  if (fault === 'runs-at-capture') {
    // "capture" executes the ops, and a launch replays nothing
    override.captureGraph = async (record: () => Promise<void>): Promise<OpsGraph> => {
      await record();
      return { nodes: 0 };
    };
    override.launchGraph = async (): Promise<void> => undefined;
    override.freeGraph = (): void => undefined;
  } else if (fault === 'launch-runs-twice') {
    override.launchGraph = async (g: OpsGraph): Promise<void> => {
      await rec.launchGraph(g);
      await rec.launchGraph(g);
    };
  } else {
    // an upload during a capture runs at once instead of being refused
    override.captureGraph = async (record: () => Promise<void>): Promise<OpsGraph> => {
      capturing = true;
      try {
        return await rec.captureGraph(record);
      } finally {
        capturing = false;
      }
    };
    override.upload = (...a: Parameters<ReferenceOps['upload']>) =>
      capturing ? ref.upload(...a) : rec.upload(...a);
  }
  return new Proxy(rec, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in override) return override[prop];
      return Reflect.get(target, prop, target) as unknown;
    },
  });
}
