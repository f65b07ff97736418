import { defineConfig } from 'vitest/config';
import { testPreset } from '@flashattn/tooling/vitest-preset';

export default defineConfig({ test: testPreset });
