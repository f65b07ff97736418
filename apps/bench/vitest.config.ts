import { defineConfig } from 'vitest/config';
import { testPreset } from '@flashattn/tooling/vitest-preset';

// --expose-gc: the allocation tests collect the heap before sampling ArrayBuffer bytes.
export default defineConfig({ test: { ...testPreset, execArgv: ['--expose-gc'] } });
