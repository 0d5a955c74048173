/**
 * scripts/gpu-bench.sh (the GPU measurement) end to end in its --smoke mode: the machine checks, then
 * scripts/gpu-bench.ts at d=64 (one head of 64), one training step per optimizer on webgpu and the kernel
 * bench in quick mode, on whatever adapter this machine has (lavapipe on CI, ~35 s on 2 cores). PyTorch on
 * CUDA is skipped with its reason where it is absent; PyTorch on the CPU (--torch-cpu) runs where torch is
 * installed, which exercises bench/torch_reference.py's --device option.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kernelCells, type Report } from '../../scripts/gpu-bench.ts';
import { has } from '../helpers/capabilities.ts';
import { tempDir } from '../helpers/scratch.ts';

const script = (args: string[], timeout = 400_000) =>
  spawnSync('bash', ['scripts/gpu-bench.sh', ...args], { encoding: 'utf8', timeout, env: { ...process.env, OUT: '' } });

function readReport(dir: string): { report: Report; markdown: string } {
  const base = readdirSync(dir).find((f) => /^gpu-bench-.*\.json$/.test(f));
  if (!base) throw new Error(`no gpu-bench-*.json in ${dir}: ${readdirSync(dir).join(', ')}`);
  return {
    report: JSON.parse(readFileSync(join(dir, base), 'utf8')) as Report,
    markdown: readFileSync(join(dir, base.replace(/\.json$/, '.md')), 'utf8'),
  };
}

const positive = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Whether PyTorch with CUDA is importable here (then the pytorch-cuda rows must run, else be skipped). */
function torchCuda(): boolean {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'], { timeout: 60_000 });
    if (r.status === 0) return true;
  }
  return false;
}

describe('scripts/gpu-bench.sh', () => {
  it('is valid bash and refuses an unknown option before any check', () => {
    expect(spawnSync('bash', ['-n', 'scripts/gpu-bench.sh'], { encoding: 'utf8' }).status).toBe(0);
    const r = script(['--frobnicate'], 20_000);
    expect(r.status).toBe(2);
    expect(r.stdout).toContain("unknown option '--frobnicate'");
    expect(r.stdout).not.toContain('[check]');
  });

  it('reads the kernel bench rows whatever their fields are', () => {
    const old = kernelCells({ hidden: 256, kernel: 'OspRmsNorm', shape: '[2048, 256]', fusedMs: 2, referenceMs: 8, ratio: 4 });
    expect([old.fused, old.reference, old.unit, old.ratio]).toEqual(['2.000', '8.000', 'ms', '4.00x']);
    const mem = kernelCells({ hidden: 256, kernel: 'peak', shape: 's', unit: 'MiB', fused: 250, reference: 300, ratio: 1.2, note: 'x' });
    expect([mem.fused, mem.reference, mem.unit, mem.ratio, mem.other]).toEqual(['250.0', '300.0', 'MiB', '1.20x', 'note=x']);
  });

  it.skipIf(!has.webgpu)(
    '--smoke measures webgpu rows and kernel rows, and says why PyTorch on CUDA was skipped',
    () => {
      const out = tempDir('osp-gpu-bench-');
      // Up to 15 minutes: on a machine where lavapipe has not compiled the attention kernels yet, the kernel
      // bench's attention rows wait for their shaders (minutes while other test files compile too).
      const r = script(['--smoke', '--no-install', '--out', out, ...(has.torch ? ['--torch-cpu'] : [])], 900_000);
      const log = `${r.stdout}\n${r.stderr}`;
      expect(r.status, log).toBe(0);
      const { report, markdown } = readReport(out);
      expect(report.complete).toBe(true);
      expect(report.mode).toBe('smoke');
      expect(report.adapter.detail).toBeTruthy();

      for (const optimizer of ['adamw', 'muon'] as const) {
        const row = report.train.find((t) => t.impl === 'webgpu' && t.hidden === 64 && t.optimizer === optimizer);
        expect(row?.status, log).toBe('ok');
        expect(positive(row!.tokensPerSec) && positive(row!.stepMs)).toBe(true);
        expect(row!.tokensPerSec! * row!.stepMs!).toBeCloseTo(16 * 128 * 1000, -1);
        expect(r.stdout).toMatch(new RegExp(`^webgpu d=64 ${optimizer} +\\d+ +\\d+\\.\\d+ `, 'm'));
        expect(markdown).toContain(`| webgpu d=64 ${optimizer} |`);

        const cuda = report.train.find((t) => t.impl === 'pytorch-cuda' && t.optimizer === optimizer)!;
        if (torchCuda()) expect(cuda.status).toBe('ok');
        else {
          expect(cuda.status).toBe('skipped');
          expect(cuda.reason).toMatch(/no PyTorch with CUDA: .+/);
          expect(r.stdout).toMatch(new RegExp(`^pytorch-cuda d=64 ${optimizer} +skipped +- +no PyTorch with CUDA`, 'm'));
        }
        if (has.torch) {
          const cpu = report.train.find((t) => t.impl === 'pytorch-cpu' && t.optimizer === optimizer)!;
          expect(cpu.status, log).toBe('ok');
          expect(positive(cpu.tokensPerSec) && positive(cpu.stepMs)).toBe(true);
        }
      }

      expect(report.kernelSections).toEqual([expect.objectContaining({ hidden: 64, heads: 1, mode: 'quick', status: 'ok' })]);
      expect(report.kernels.length).toBeGreaterThan(5);
      expect(r.stdout).toContain('fused WGSL kernels vs reference ops (webgpu), d=64, 1 head, quick mode');
      for (const k of report.kernels) {
        const c = kernelCells(k);
        for (const v of [c.fused, c.reference, c.ratio.replace(/x$/, '')]) expect(positive(Number(v)), JSON.stringify(k)).toBe(true);
        // Every row is in the printed table (a long kernel name on a line of its own).
        expect(r.stdout).toContain(String(k.kernel));
      }
      expect(r.stdout).toMatch(/^adapter +\S/m);
      expect(r.stdout).toMatch(/commit \S+, mode smoke/);
    },
    920_000,
  );

  it.skipIf(!has.webgpu)('reports the units a spent time budget left out as skipped, and still prints the table', () => {
    const out = tempDir('osp-gpu-bench-');
    const r = script(['--smoke', '--no-install', '--out', out, '--budget', '1'], 90_000);
    // Nothing was measured on webgpu: exit status 1, but the table and the files are there.
    expect(r.status, r.stdout + r.stderr).toBe(1);
    const { report } = readReport(out);
    expect(report.train.filter((t) => t.impl === 'webgpu').map((t) => t.status)).toEqual(['skipped', 'skipped']);
    expect(report.train.find((t) => t.impl === 'webgpu')!.reason).toContain('time budget');
    expect(report.kernelSections[0]!.status).toBe('skipped');
    expect(r.stdout).toMatch(/^webgpu d=64 adamw +skipped +- +the 1 s time budget was spent/m);
  });
});
