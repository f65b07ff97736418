// NCCL loading: where libnccl (or the addon, or its NCCL entry points) is missing, loadNccl throws the typed
// NcclUnavailableError saying what is missing, never a crash; where NCCL loads, it reports its version.
// The collectives themselves need GPUs: apps/bench/src/multigpu/device.sh runs them.
import { describe, expect, it } from 'vitest';
import { loadNccl, NcclUnavailableError } from './nccl.js';

describe('loadNccl', () => {
  it('gives NcclUnavailableError for a path that does not exist when no NCCL is installed, else a version', () => {
    let loaded: ReturnType<typeof loadNccl> | null = null;
    let error: unknown = null;
    try {
      loaded = loadNccl('/nonexistent/libnccl.so.2');
    } catch (e) {
      error = e;
    }
    if (loaded) {
      // NCCL found through FLASHATTN_NCCL_PATH or the standard names (a GPU machine).
      console.log(`NCCL ${loaded.version} loaded from ${loaded.loadedFrom}`);
      expect(loaded.version).toBeGreaterThan(20000);
    } else {
      expect(error).toBeInstanceOf(NcclUnavailableError);
      expect((error as Error).message).toMatch(/nccl backend is unavailable: .*(addon|NCCL|nccl)/);
    }
  });
});
