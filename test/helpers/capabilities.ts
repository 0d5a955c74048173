/**
 * Optional parts of a machine that some tests need. test/setup/capabilities.ts probes each once per
 * `npm test` and passes the answer as OSP_TEST_HAS_<NAME>=1|0; tests skip with `skipIf(!has.x)`, the
 * run ends with one line per skipped part saying how to enable it, and OSP_REQUIRE_ALL=1 (CI) turns
 * any missing part into a failure.
 */
export const CAPABILITIES = {
  native: {
    tests: 'native-backend tests',
    enable: 'a C++ compiler (g++, make, python3) and `npm run build:native`',
    skipVar: 'OSP_SKIP_NATIVE',
  },
  openblas: {
    tests: 'OpenBLAS GEMM tests (portable GEMM against OpenBLAS)',
    enable: 'apt-get install libopenblas-dev, then `npm run build:native`',
    skipVar: undefined,
  },
  webgpu: {
    tests: 'WebGPU tests',
    enable:
      "a GPU with Vulkan drivers, or Mesa >= 25's lavapipe (Debian 12: add bookworm-backports, " +
      'apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1)',
    skipVar: 'OSP_SKIP_WEBGPU',
  },
  rsvg: {
    tests: 'SVG-to-PNG rendering checks of the report figures',
    enable: 'apt-get install librsvg2-bin',
    skipVar: undefined,
  },
  torch: {
    tests: 'PyTorch peer tests (a Hugging Face directory PyTorch trained, read by osp-lab)',
    enable: 'apt-get install python3-torch libopenblas0-pthread (Debian; run by /usr/bin/python3)',
    skipVar: 'OSP_SKIP_TORCH',
  },
  slurm: {
    tests: 'Slurm executor tests (osp sweep --executor slurm on a real cluster)',
    enable: 'a Slurm cluster whose sbatch works from here; on Debian as root: bash scripts/slurm-up.sh (a single-node cluster)',
    skipVar: 'OSP_SKIP_SLURM',
  },
} as const satisfies Record<string, { tests: string; enable: string; skipVar: string | undefined }>;

export type Capability = keyof typeof CAPABILITIES;

function flag(cap: Capability): boolean {
  const v = process.env[`OSP_TEST_HAS_${cap.toUpperCase()}`];
  if (v === undefined) {
    throw new Error(`OSP_TEST_HAS_${cap.toUpperCase()} is not set: run the tests through vitest (its globalSetup probes the machine)`);
  }
  return v === '1';
}

/** What this machine has, as probed by the global setup. */
export const has = {
  get native() {
    return flag('native');
  },
  get openblas() {
    return flag('openblas');
  },
  get webgpu() {
    return flag('webgpu');
  },
  get rsvg() {
    return flag('rsvg');
  },
  get torch() {
    return flag('torch');
  },
  get slurm() {
    return flag('slurm');
  },
};
