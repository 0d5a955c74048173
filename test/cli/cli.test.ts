/**
 * The `osp` command as a user runs it (a child process through bin/osp.mjs): help texts, exit codes,
 * train -> eval on a checkpoint (checked against the independent float64 Llama on the saved weights),
 * and data prepare -> training on the shards.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NORMS } from '../../src/model/norms.ts';
import { tempDir, tinyRun } from '../helpers/run.ts';
import { checkpointWeights64, textLoss64, TINY_RUN_64 } from '../helpers/tiny64.ts';

function osp(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/osp.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const COMMANDS = ['train', 'eval', 'sweep', 'export', 'quant-eval', 'analyze', 'data'];

describe('osp', () => {
  it('--help lists the commands; each command documents its options', () => {
    const top = osp('--help');
    expect(top.code).toBe(0);
    for (const c of COMMANDS) expect(top.stdout).toContain(`  ${c} `);
    const t = osp('train', '--help');
    expect(t.code).toBe(0);
    for (const o of ['--config FILE', '--set key=value', '--resume RUN_DIR', '--backend NAME', '--out DIR']) expect(t.stdout).toContain(o);
    expect(osp('eval', '--help').stdout).toContain('--text FILE');
    expect(osp('data', '--help').stdout).toContain('--shard-tokens N');
  });

  it('every help text fits an 80-column terminal (descriptions wrap under their column)', () => {
    for (const args of [['--help'], ...COMMANDS.map((c) => [c, '--help'])]) {
      const r = osp(...args);
      expect(r.code).toBe(0);
      for (const line of r.stdout.trimEnd().split('\n')) expect(line.length, `${args.join(' ')}: ${line}`).toBeLessThanOrEqual(80);
    }
    // Wrapped, not cut: the end of a long description is still there.
    expect(osp('quant-eval', '--help').stdout).toMatch(/\n {21}residual-rotated export\n/);
  });

  it('unknown commands and options fail with status 2 and one clear line', () => {
    const a = osp('trian');
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("unknown command 'trian'; valid commands: train, eval, ");
    for (const c of COMMANDS) expect(a.stderr).toContain(c);
    const b = osp('train', '--bogus');
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/^osp train: unknown option '--bogus'; valid options: --config VALUE, --set VALUE, --resume VALUE/);
    const c = osp('train', '--set', 'model.norm=batchnorm', '--out', tempDir());
    expect(c.code).toBe(2);
    expect(c.stderr.trim()).toBe(
      `osp train: model.norm: unknown value "batchnorm"; valid choices: ${Object.keys(NORMS)
        .map((k) => `'${k}'`)
        .join(', ')}`,
    );
  });

  it('train, then eval a checkpoint on a text file; the loss matches a float64 re-computation', () => {
    const dir = tempDir();
    const cfg = tinyRun(dir, { steps: 4, schedule: { kind: 'constant' }, checkpoint: { every: 0, keep: 1 } });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const t = osp('train', '--config', join(dir, 'config.json'), '--set', 'seed=5');
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^backend: cpu/m);
    expect(t.stdout).toMatch(/done: 4 steps/);
    const text = 'The quick brown fox jumps over the lazy dog; then it naps. Done!';
    writeFileSync(join(dir, 'text.txt'), text);
    const e = osp('eval', join(dir, 'tiny'), '--text', join(dir, 'text.txt'), '--json');
    expect(e.code, e.stderr).toBe(0);
    const r = JSON.parse(e.stdout) as { loss: number; tokens: number; bpb: number };
    expect(r.tokens).toBe(text.length);
    expect(r.bpb).toBeCloseTo(r.loss / Math.LN2, 10);

    // Oracle: the saved weights through the float64 Llama, windows of maxSeqLen (32) over BOS + bytes.
    const w = checkpointWeights64(join(dir, 'tiny/checkpoints/step_00000004'));
    expect(Math.abs(r.loss - textLoss64(TINY_RUN_64, w, text))).toBeLessThan(1e-4);
  });

  it('data prepare writes shards that training reads', () => {
    const dir = tempDir();
    const docs = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ text: `Document ${i}: ${'lorem ipsum dolor sit amet '.repeat(8)}` }),
    );
    writeFileSync(join(dir, 'docs.jsonl'), docs.join('\n') + '\n');
    const p = osp('data', 'prepare', join(dir, 'docs.jsonl'), '--out', join(dir, 'shards'), '--val-fraction', '0.2');
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/data_val_000000\.bin\t\d+ tokens/);
    expect(p.stdout).toMatch(/data_train_000000\.bin\t\d+ tokens/);
    const cfg = tinyRun(dir, {
      steps: 3,
      schedule: { kind: 'constant' },
      eval: { every: 0, batches: 1 },
      data: { source: 'shards', train: [join(dir, 'shards/data_train_*.bin')], val: [join(dir, 'shards/data_val_*.bin')] },
    });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    const t = osp('train', '--config', join(dir, 'config.json'));
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/val loss \d/);
  });
});
