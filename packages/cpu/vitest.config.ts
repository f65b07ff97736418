import { defineConfig } from 'vitest/config';
import { testPreset } from '@flashattn/tooling/vitest-preset';

// Node 20 has relaxed SIMD behind a flag (on by default from Node 22): turn it on so the tests run the
// attention's FMA module as well as the plain SIMD one (attention/flash-simd.test.ts forces that one).
const major = Number(process.versions.node.split('.')[0]);
const execArgv = major === 20 ? ['--experimental-wasm-relaxed-simd'] : [];

export default defineConfig({ test: { ...testPreset, execArgv } });
