/**
 * A researcher's first hour with the `osp` command, as a child process: the version, option errors
 * that list the valid options, one prefix per error, Ctrl-C that saves the run, `--init-from` and
 * `--extend-schedule` on the command line, exports into missing folders, `data prepare` on a single
 * text file, UTF-8 checks in `eval`, the short backend line and the console's research signal.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listCheckpoints } from '../../src/train/checkpoint.ts';
import { progressLine } from '../../src/train/callbacks/logging.ts';
import { formatSignal } from '../../src/train/signal_line.ts';
import { gpuDevicePresent } from '../../src/backend/index.ts';
import { readMetrics, tempDir, tinyRun } from '../helpers/run.ts';

function osp(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function configFile(dir: string, extra: Record<string, unknown>): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(tinyRun(dir, extra)));
  return path;
}

describe('osp on the command line', () => {
  it('--version prints the package version', () => {
    const r = osp('--version');
    expect(r.code).toBe(0);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(r.stdout.trim()).toBe(`osp-lab ${pkg.version}`);
  });

  it('an unknown option lists the valid ones; errors carry one prefix', () => {
    const r = osp('eval', '--txt', 'x');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("osp eval: unknown option '--txt'; valid options: --text VALUE, --json, --backend VALUE");
    const e = osp('eval');
    expect(e.code).toBe(2);
    expect(e.stderr.trim()).toBe('osp eval: expected one CHECKPOINT argument (see osp eval --help)');
  });

  it('a warmup longer than a short run names the --set that fixes it', () => {
    const dir = tempDir();
    const r = osp('train', '--config', 'configs/tiny.json', '--set', 'steps=3', '--out', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("schedule.warmupSteps: 20 exceeds the run's 3 steps");
    expect(r.stderr).toContain('--set schedule.warmupSteps=0');
    expect(existsSync(join(dir, 'tiny'))).toBe(false);
  });

  it('Ctrl-C finishes the step, saves a checkpoint, says how to resume and exits 130; the resume continues', async () => {
    const dir = tempDir();
    const cfg = configFile(dir, {
      steps: 400,
      checkpoint: { every: 1000, keep: 2 },
      schedule: { kind: 'constant' },
      logging: { every: 1, histogramsEvery: 0, console: 'lines' },
    });
    const child = spawn(process.execPath, ['bin/osp.mjs', 'train', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (/step\s+3\/400/.test(stdout) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('SIGINT: finishing this step and saving a checkpoint');
    const runDir = join(dir, 'tiny');
    expect(stdout).toContain(`continue with: osp train --resume ${runDir}`);
    const [ckpt] = listCheckpoints(runDir);
    expect(ckpt!.step).toBeGreaterThanOrEqual(3);
    expect(stdout).toContain(`stopped by SIGINT at step ${ckpt!.step}`);
    expect(existsSync(join(runDir, '.lock'))).toBe(false);
    expect(existsSync(join(runDir, 'summary.json'))).toBe(false);
    const r = osp('train', '--resume', runDir, '--set', `steps=${ckpt!.step + 2}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`resumed ${runDir} at step ${ckpt!.step}`);
    const steps = readMetrics(runDir).map((row) => row.step);
    expect(steps).toEqual(Array.from({ length: ckpt!.step + 2 }, (_, i) => i + 1));
  });

  it('--extend-schedule on the command line; --init-from starts from an HF export and lists every size that differs', () => {
    const dir = tempDir();
    const base = { steps: 4, checkpoint: { every: 0, keep: 1 }, logging: { every: 1, histogramsEvery: 0, console: 'lines' } };
    const t = osp('train', '--config', configFile(dir, base));
    expect(t.code, t.stderr).toBe(0);
    // The 4-step cosine ran to its end: more steps stretch it, which must be asked for.
    const runDir = join(dir, 'tiny');
    const refused = osp('train', '--resume', runDir, '--set', 'steps=6');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--extend-schedule');
    const ext = osp('train', '--resume', runDir, '--set', 'steps=6', '--extend-schedule');
    expect(ext.code, ext.stderr).toBe(0);
    expect(ext.stdout).toMatch(/extending the schedule: lr factor at step 4/);

    const hf = join(dir, 'hf');
    const x = osp('export', runDir, '--format', 'hf', '--out', hf);
    expect(x.code, x.stderr).toBe(0);
    const mismatch = osp(
      'train',
      '--config',
      configFile(dir, { ...base, name: 'init' }),
      '--init-from',
      hf,
      '--set',
      'model.hiddenSize=48',
    );
    expect(mismatch.code).toBe(2);
    // Every differing field is named, with the --set that fixes it.
    expect(mismatch.stderr).toMatch(/model\.hiddenSize is 48, the checkpoint has 32/);
    const fix = /\(fix with (.*)\)/
      .exec(mismatch.stderr)![1]!
      .split(' ')
      .filter((w) => w !== '--set');
    const init = osp(
      'train',
      '--config',
      configFile(dir, { ...base, name: 'init' }),
      '--init-from',
      hf,
      ...fix.flatMap((f) => ['--set', f]),
    );
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain(`initialised from ${hf}`);
  });

  it('export: --format is required and named; a GGUF into a missing folder creates it', () => {
    const dir = tempDir();
    const t = osp('train', '--config', configFile(dir, { steps: 2, schedule: { kind: 'constant' }, checkpoint: { every: 0, keep: 1 } }));
    expect(t.code, t.stderr).toBe(0);
    const runDir = join(dir, 'tiny');
    const none = osp('export', runDir, '--out', join(dir, 'x'));
    expect(none.code).toBe(2);
    expect(none.stderr.trim()).toBe('osp export: --format is required: hf or gguf (see osp export --help)');
    const out = join(dir, 'new', 'folder', 'model.gguf');
    const g = osp('export', runDir, '--format', 'gguf', '--out', out);
    expect(g.code, g.stderr).toBe(0);
    expect(readFileSync(out).subarray(0, 4).toString('latin1')).toBe('GGUF');
  });

  it('data prepare: one .txt (split by position) or --val FILE; --overwrite replaces old shards; data.train may be a string', () => {
    const dir = tempDir();
    const text = 'A single long document about outliers. '.repeat(60);
    writeFileSync(join(dir, 'book.txt'), text);
    writeFileSync(join(dir, 'held.txt'), 'Held-out text, a document of its own. '.repeat(10));
    const p = osp('data', 'prepare', join(dir, 'book.txt'), '--out', join(dir, 'shards'), '--val-fraction', '0.1');
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toContain('one document: its last 10.0% (by characters) is the validation split');
    const tokens = (split: string) => Number(new RegExp(`data_${split}_000000\\.bin\\t(\\d+) tokens`).exec(p.stdout)![1]);
    // BOS + bytes + EOS per side.
    expect(tokens('train') + tokens('val')).toBe(text.length + 4);
    expect(tokens('val')).toBe(Math.round(text.length * 0.1) + 2);
    const again = osp('data', 'prepare', join(dir, 'book.txt'), '--out', join(dir, 'shards'), '--val', join(dir, 'held.txt'));
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('pass --overwrite');
    const over = osp('data', 'prepare', join(dir, 'book.txt'), '--out', join(dir, 'shards'), '--val', join(dir, 'held.txt'), '--overwrite');
    expect(over.code, over.stderr).toBe(0);
    expect(over.stdout).toMatch(new RegExp(`data_val_000000\\.bin\\t${'Held-out text, a document of its own. '.length * 10 + 2} tokens`));
    // data.train as a plain string; one document, split by position for validation.
    const t = osp(
      'train',
      '--config',
      configFile(dir, {
        steps: 2,
        schedule: { kind: 'constant' },
        eval: { every: 0, batches: 1 },
        data: { source: 'text', train: join(dir, 'book.txt'), valFraction: 0.2 },
      }),
    );
    expect(t.code, t.stderr).toBe(0);
  });

  it('eval refuses text that is not UTF-8, naming the file and the byte', () => {
    const dir = tempDir();
    const t = osp('train', '--config', configFile(dir, { steps: 2, schedule: { kind: 'constant' }, checkpoint: { every: 0, keep: 1 } }));
    expect(t.code, t.stderr).toBe(0);
    writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6e, 0x6f, 0x69, 0x72])); // "café noir" in Latin-1
    const e = osp('eval', join(dir, 'tiny'), '--text', join(dir, 'latin1.txt'));
    expect(e.code).toBe(2);
    expect(e.stderr).toContain(`${join(dir, 'latin1.txt')}: expected UTF-8 text, found an invalid byte sequence at byte 3 (0xe9)`);
  });

  it('the backend line is short; without a GPU device auto does not load Dawn (no Vulkan warnings); done shows the signal', () => {
    const dir = tempDir();
    const t = osp(
      'train',
      '--config',
      configFile(dir, {
        backend: 'auto',
        steps: 3,
        schedule: { kind: 'constant' },
        monitor: { every: 2, batchSize: 2 },
        quant: { every: 3, batches: 1 },
        logging: { every: 1, histogramsEvery: 0, console: 'lines' },
      }),
    );
    expect(t.code, t.stderr).toBe(0);
    const line = t.stdout.split('\n').find((l) => l.startsWith('backend: '))!;
    expect(line.length).toBeLessThanOrEqual(160);
    if (!gpuDevicePresent()) {
      expect(line).toContain('webgpu: no GPU device');
      expect(t.stderr).not.toMatch(/Vulkan|maxDynamic/);
    }
    expect(t.stdout).toMatch(/monitors @ step 2: kurtosis \d\.\d{3} \(/);
    expect(t.stdout).toMatch(/^done: 3 steps in [\d.]+ s \(training [\d.]+ s at \d+ tok\/s\)/m);
    expect(t.stdout).toMatch(/^monitors \(last\): kurtosis [\d.]+ \(.*floor [\d.]+\) {2}W4A4KV4 RTN ppl x\d\.\d{3}$/m);
  });
});

describe('console formatting', () => {
  it('the progress bar fits the terminal width', () => {
    const fields = ['loss 2.3456', 'gnorm 12.345', '12345 tok/s', 'ETA 12m34s'];
    for (const width of [30, 60, 79, 119]) {
      const l = progressLine('step  1200/100000', fields, 0.5, width);
      expect(l.length, `width ${width}: ${l}`).toBeLessThanOrEqual(width);
      if (width >= 60) expect(l).toContain('loss 2.3456');
    }
    expect(progressLine('step 12/100', fields, 0.5, 119)).toContain('gnorm 12.345');
  });

  it('the signal phrase: kurtosis against the floor (below it: said so), quantization ratio, top eigenvalue', () => {
    expect(formatSignal({ kurtosis: 1.07, floor: 0.107, quant: [{ tag: 'w4a4kv4_rtn', ratio: 1.0345 }], hessianTop: 31.234 })).toBe(
      'kurtosis 1.070 (10x floor 0.107)  W4A4KV4 RTN ppl x1.034  top Hessian eig 31.23',
    );
    const variants = [
      { tag: 'w4a4kv4_rtn', ratio: 1.0345 },
      { tag: 'w4a4kv4_gptq_quarot', ratio: 1.0121 },
    ];
    expect(formatSignal({ quant: variants })).toBe('W4A4KV4 RTN ppl x1.034, QuaRot + GPTQ x1.012');
    // A summary of osp-lab < 0.2 names its setting as such.
    expect(formatSignal({ quant: [{ tag: 'w4a4kv4_had', ratio: 1.0345 }] })).toBe('W4A4KV4 v0.1 RTN + FFN Had ppl x1.034');
    expect(formatSignal({ kurtosis: 0.09, floor: 0.107 })).toBe('kurtosis 0.090 (below the Gaussian floor 0.107)');
    expect(formatSignal({})).toBe('');
  });
});
