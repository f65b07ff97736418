#!/usr/bin/env node
// prepack / postpack (--clean): stage @flashattn/cpu's compiled addon here (tooling/scripts/stage-addon.mjs).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stageAddon } from '../../../tooling/scripts/stage-addon.mjs';

stageAddon({
  here: join(dirname(fileURLToPath(import.meta.url)), '..'),
  source: 'cpu',
  file: 'flashattn_cpu.node',
  compiler: 'g++',
  describe: () => ({ isa: 'x86-64 + AVX2 + FMA (checked at run time)' }),
});
