/**
 * The generated subgroup attention kernels (src/backend/webgpu/attention_subgroup.ts) at the subgroup
 * sizes this machine's lavapipe does not use by default: llvmpipe's SIMD width follows the CPU (4 lanes
 * with SSE only, 8 with AVX2, 16 with AVX-512), so a CI machine may run any of them. Each width runs in a
 * child process with LP_NATIVE_VECTOR_WIDTH set (test/helpers/attention_width_child.ts): forward and
 * gradients against the float64 oracle, NaN-poisoned, and the generated programs must be the ones that ran.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { skipWebGPU as skip } from '../helpers/backends.ts';

describe.skipIf(skip)('generated attention kernels at other subgroup sizes (lavapipe)', () => {
  for (const width of [128, 256, 512]) {
    it(`LP_NATIVE_VECTOR_WIDTH=${width}: subgroups of ${width / 32}, output and gradients match float64`, (ctx) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/attention_width_child.ts'], {
        encoding: 'utf8',
        env: { ...process.env, LP_NATIVE_VECTOR_WIDTH: String(width) },
        timeout: 600_000,
      });
      expect(r.status, r.stderr).toBe(0);
      const line = r.stdout.trim().split('\n').pop()!;
      const report = JSON.parse(line) as {
        software: boolean;
        subgroupSize: number | null;
        enabled: boolean;
        errors: Record<string, number>;
        programs: string[];
      };
      // A hardware adapter ignores the variable (and runs the tile kernels, tested elsewhere).
      if (!report.software) ctx.skip();
      expect(report.subgroupSize).toBe(width / 32);
      expect(report.enabled).toBe(true);
      for (const [name, e] of Object.entries(report.errors)) expect(e, name).toBeLessThan(1e-5);
      for (const k of ['fwd', 'dq', 'dkv']) expect(report.programs).toContain(`attention_sg_${k}`);
    });
  }
});
