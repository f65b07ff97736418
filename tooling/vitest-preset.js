// Shared vitest preset: every package's vitest.config.ts spreads this.
// Tests are CPU-heavy numerics on a 2-core CI machine: run files in forked workers, one per core,
// and allow long single tests (the float64 oracle at N = 1000 is slow) without letting a hang pass.
// Each run also writes test-results.json, which tooling/scripts/summarize-tests.mjs sums for CI.
/** @type {import('vitest/config').UserConfig['test']} */
export const testPreset = {
  include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
  pool: 'forks',
  maxWorkers: 2,
  testTimeout: 120_000,
  hookTimeout: 120_000,
  reporters: ['default', 'json'],
  outputFile: { json: './test-results.json' },
};
