// Writes the parity model's weights and batch for torch_golden.py (run after `pnpm build`):
//   node parity/write-inputs.mjs <dir>   ->  <dir>/parity-inputs.safetensors
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors, paramSpecs, writeFileAtomic } from '../dist/index.js';
import { parityInputs, PARITY_CONFIG, PARITY_B, PARITY_T } from '../dist/parity/parity-inputs.js';

const dir = process.argv[2] ?? '.parity-carry';
mkdirSync(dir, { recursive: true });
const { params, tokens, targets } = parityInputs();
const tensors = new Map();
for (const s of paramSpecs(PARITY_CONFIG)) tensors.set(s.name, { shape: s.shape, data: params.subarray(s.offset, s.offset + s.size) });
tensors.set('input.tokens', { shape: [PARITY_B, PARITY_T], data: tokens });
tensors.set('input.targets', { shape: [PARITY_B, PARITY_T], data: targets });
writeFileAtomic(join(dir, 'parity-inputs.safetensors'), encodeSafetensors(tensors, { config: JSON.stringify(PARITY_CONFIG) }));
console.log(`wrote ${join(dir, 'parity-inputs.safetensors')}`);
