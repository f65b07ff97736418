import { defineConfig } from 'vitest/config';
import { testPreset } from '@flashattn/tooling/vitest-preset';

// dev/: the retired kernels' reference checks (skipped where their adapter features are missing)
export default defineConfig({
  test: { ...testPreset, include: [...testPreset.include, 'dev/**/*.test.ts'] },
});
