// Child for the kill-during-checkpoint-write test. Saves checkpoint v1 (step 1) normally, then starts
// writing v2 (step 2, different weights) in small chunks; after the first chunk it prints MIDWRITE and
// blocks, so the parent can SIGKILL it with the temp file half written.
import { CpuOps } from '@flashattn/cpu';
import { AdamW, GPT2, saveCheckpoint } from '@flashattn/transformer';

const [path, seed] = [process.argv[2], Number(process.argv[3])];
const config = { vocabSize: 64, maxSeqLen: 16, nLayer: 2, nHead: 2, nEmbd: 32 };
const ops = new CpuOps({ threads: 1 });
const model = new GPT2({ config, ops, seed });
const opt = new AdamW(ops, model.specs, model.numParams);
await saveCheckpoint(path, model, opt, { step: 1, dataPosition: 100, rngState: 7 });
process.stdout.write('SAVED1\n');
await model.setParams(new Float32Array(model.numParams).fill(0.5));
await saveCheckpoint(
  path,
  model,
  opt,
  { step: 2, dataPosition: 200, rngState: 8 },
  {
    chunkBytes: 4096,
    onChunk: (written) => {
      if (written === 4096) {
        process.stdout.write('MIDWRITE\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000); // block until killed
      }
    },
  },
);
process.stdout.write('SAVED2\n');
