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
    // A test that first uses a WGSL program on a software adapter (lavapipe, as on CI) waits for its
    // compilation: the fused attention kernels take up to about 70 s per head dimension there (once per
    // machine: Mesa caches compiled shaders on disk), more while another file compiles on the other core.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Two cores on CI: run two files at once.
    maxWorkers: 2,
  },
});
