/**
 * Peak device memory where a backend can tell, read duck-typed (nothing in core's Ops contract asks for
 * it): the first of these that the ops object has, else null.
 *   peakMemoryBytes(): number | Promise<number>
 *   memoryStats(): { peakBytes | peak | maxAllocated: number } (or a Promise of it)
 *   peakBytes: number, or runtime.peakBytes: number (the WebGPU runtime's counter)
 */
export interface DevicePeak {
  bytes: number;
  /** Which member answered. */
  source: string;
}

export async function devicePeakMemory(ops: object): Promise<DevicePeak | null> {
  const o = ops as Record<string, unknown>;
  const num = (x: unknown): number | null =>
    typeof x === 'number' && Number.isFinite(x) ? x : typeof x === 'bigint' ? Number(x) : null;
  try {
    if (typeof o['peakMemoryBytes'] === 'function') {
      const v = num(await (o['peakMemoryBytes'] as () => unknown).call(ops));
      if (v !== null) return { bytes: v, source: 'peakMemoryBytes()' };
    }
    if (typeof o['memoryStats'] === 'function') {
      const s = (await (o['memoryStats'] as () => unknown).call(ops)) as Record<
        string,
        unknown
      > | null;
      for (const k of ['peakBytes', 'peak', 'maxAllocated']) {
        const v = num(s?.[k]);
        if (v !== null) return { bytes: v, source: `memoryStats().${k}` };
      }
    }
    const direct = num(o['peakBytes']);
    if (direct !== null) return { bytes: direct, source: 'peakBytes' };
    const rt = o['runtime'] as Record<string, unknown> | undefined;
    const viaRuntime = num(rt?.['peakBytes']);
    if (viaRuntime !== null) return { bytes: viaRuntime, source: 'runtime.peakBytes' };
  } catch {
    return null;
  }
  return null;
}
