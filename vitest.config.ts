import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each test file gets its own process: tfjs keeps one global engine per process and
    // the backends (wasm, Dawn) hold native resources that must not leak between files.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores on CI: run two files at once.
    maxWorkers: 2,
  },
});
