import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Probes the optional parts (native pack, OpenBLAS, WebGPU adapter, rsvg-convert) once; tests that
    // need a missing part skip and the run ends with a line saying how to enable it (CI: failure).
    globalSetup: ['test/setup/capabilities.ts'],
    // Removes, when each test file ends, the temporary directories tempDir() (test/helpers/scratch.ts) made.
    setupFiles: ['test/setup/scratch.ts'],
    // Each test file gets its own process: tfjs keeps one global engine per process and
    // the backends (wasm, Dawn) hold native resources that must not leak between files.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores on CI: run two files at once.
    maxWorkers: 2,
  },
});
