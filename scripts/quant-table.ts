/**
 * The quantization table of a sweep's checkpoints (docs/quantization.md's): for each trial, in the sweep's order,
 * `osp quant-eval TRIAL --val --windows N --all --json` (RTN, RTN + FFN Had, QuaRot, GPTQ, GPTQ + FFN Had,
 * QuaRot + GPTQ, llama.cpp Q4_0 plain and residual-rotated), printed as one Markdown table of perplexity
 * ratios to full precision with the 95% interval of the evaluation (paired over windows), plus each
 * trial's excess kurtosis from its summary.json.
 *
 * Usage: npx tsx scripts/quant-table.ts SWEEP_DIR [--windows 256] [--backend NAME] [--json FILE]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { windows: { type: 'string' }, backend: { type: 'string' }, json: { type: 'string' } },
});
if (positionals.length !== 1) {
  console.error('usage: npx tsx scripts/quant-table.ts SWEEP_DIR [--windows 256] [--backend NAME] [--json FILE]');
  process.exit(2);
}
const sweepDir = positionals[0]!;
const windows = args.windows ?? '256';
const sweepFile = join(sweepDir, 'sweep.json');
if (!existsSync(sweepFile)) {
  console.error(`${sweepFile} not found: expected the directory of an osp sweep`);
  process.exit(2);
}
const trials = (JSON.parse(readFileSync(sweepFile, 'utf8')) as { trials: string[] }).trials;

interface Result {
  tokens: number;
  fp: { loss: number; perplexity: number };
  variants: { name: string; gap: { loss: number; perplexityRatio: number; lossStderr: number | null }; seconds: number }[];
  gguf: { type: string; rotate: boolean; perplexity: number }[];
}

const results: { trial: string; kurtosis: number | null; r: Result }[] = [];
for (const trial of trials) {
  const dir = join(sweepDir, trial);
  const t0 = performance.now();
  const cmd = [
    'bin/osp.mjs',
    'quant-eval',
    dir,
    '--val',
    '--windows',
    windows,
    '--all',
    '--json',
    ...(args.backend ? ['--backend', args.backend] : []),
  ];
  const p = spawnSync(process.execPath, cmd, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (p.status !== 0) {
    console.error(`${trial}: osp quant-eval failed (${p.status}):\n${p.stderr}`);
    process.exit(1);
  }
  const summaryFile = join(dir, 'summary.json');
  const summary = existsSync(summaryFile)
    ? (JSON.parse(readFileSync(summaryFile, 'utf8')) as { monitors?: { outliers?: { ospKurtosis?: number } } })
    : {};
  results.push({ trial, kurtosis: summary.monitors?.outliers?.ospKurtosis ?? null, r: JSON.parse(p.stdout) as Result });
  console.error(`${trial}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 2) + '\n');

const first = results[0]!.r;
const ratio = (g: Result['variants'][number]['gap']) =>
  g.lossStderr === null
    ? g.perplexityRatio.toFixed(3)
    : `${g.perplexityRatio.toFixed(3)} +- ${(g.perplexityRatio * (Math.exp(1.96 * g.lossStderr) - 1)).toFixed(3)}`;
const ggufName = (g: Result['gguf'][number]) => `llama.cpp ${g.type.toUpperCase()}${g.rotate ? ' rotated' : ''}`;
const head = [
  'config',
  'excess kurtosis',
  '16-bit PPL',
  ...first.variants.map((v) => v.name.replace(/^W4A4KV4 /, '')),
  ...first.gguf.map(ggufName),
];
console.log(`| ${head.join(' | ')} |`);
console.log(
  `|---|${head
    .slice(1)
    .map(() => '---:')
    .join('|')}|`,
);
for (const { trial, kurtosis, r } of results) {
  const cells = [
    trial,
    kurtosis === null ? '-' : kurtosis.toFixed(3),
    r.fp.perplexity.toFixed(3),
    ...r.variants.map((v) => ratio(v.gap)),
    ...r.gguf.map((g) => (g.perplexity / r.fp.perplexity).toFixed(3)),
  ];
  console.log(`| ${cells.join(' | ')} |`);
}
console.log(`\n${first.tokens} validation tokens per checkpoint (${windows} windows).`);
