/**
 * The measurement behind scripts/gpu-bench.sh (run that one: it checks the machine first and passes what it
 * found as --gpu, --gpu-driver, --vulkan, --torch-python, --torch-cuda-skip).
 *
 * At each hidden size d (default 256 and 512; 4 layers, T=128, B=16, V=256, head_dim 64 so d/64 heads):
 *   webgpu        training tokens/s and ms/step, AdamW and Muon (bench/speed.ts stepTime)
 *   pytorch-cuda  the same model and step in PyTorch on CUDA (bench/torch_reference.py --device cuda)
 *   pytorch-cpu   the same on the CPU, only with --torch-cpu (a cheap check of the PyTorch path)
 *   kernels       every row of benchWebgpuKernels({ quick, hiddenSize: d, numHeads: d / 64 })
 *
 * Each unit (webgpu training at one d, one PyTorch case, the kernel bench at one d) runs in a child process
 * with a time limit, so a crash, a hang or a failure loses that unit only; the units still to run when the time
 * budget (--budget) is spent are reported as skipped. After every unit the report is rewritten to
 * OUT/gpu-bench-<stamp>.json and .md (OUT: --out, else $OUT, else bench/gpu-bench-out); at the end one plain
 * text table is printed. Ctrl-C prints and writes what finished.
 *
 * Repetitions: on a hardware adapter 3 warm-up steps and the median of 10 (--quick: 2 and 5; the kernel bench in
 * full mode, quick with --quick); on a software adapter (lavapipe) 1 warm-up step and the median of 3 steps at
 * d <= 256, a single step above, the kernel bench in quick mode and not at all above d = 256 unless
 * --full-software (d=512 took 15 minutes on lavapipe on 2 cores). --smoke: d=64 only, one step after one
 * warm-up, the kernel bench in quick mode (the test in test/bench/gpu_bench.test.ts). PyTorch: 5 warm-up steps
 * and the median of 30 (--quick: 3 and 10; --smoke: 1 and 2). The budget is 450 s on a hardware adapter (with the
 * checks of gpu-bench.sh the run stays under 8 minutes), 3600 s on a software adapter or none.
 *
 * Exit status: 0 when every unit ran or was skipped for a stated reason, 1 when a unit failed or timed out or
 * nothing was measured on webgpu, 130 after Ctrl-C.
 *
 *   npx tsx scripts/gpu-bench.ts [--quick | --smoke] [--out DIR] [--budget S] [--sizes 256,512] [--torch-cpu] ...
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
/** Prefix of the result lines a child prints on stdout (anything else on stdout is only logged). */
const MARK = '@gpu-bench ';
const B = 16;
const T = 128;
const HEAD_DIM = 64;
const OPTIMIZERS = ['adamw', 'muon'] as const;
type OptimizerKind = (typeof OPTIMIZERS)[number];

type Status = 'ok' | 'skipped' | 'failed' | 'timeout';

/** One training-throughput row: webgpu, pytorch-cuda or pytorch-cpu at one size and optimizer. */
export interface TrainRow {
  impl: 'webgpu' | 'pytorch-cuda' | 'pytorch-cpu';
  hidden: number;
  heads: number;
  optimizer: OptimizerKind;
  status: Status;
  tokensPerSec?: number;
  stepMs?: number;
  /** How the time was taken, e.g. "median of 10 after 3 warm-up". */
  timing?: string;
  reason?: string;
}

/**
 * One row of benchWebgpuKernels at one size, kept as the bench returned it (its fields change as kernels are
 * added: fusedMs/referenceMs, or fused/reference with a unit), plus the size it was measured at.
 */
export type KernelRow = Record<string, unknown> & { hidden: number };

/** A kernel row's cells: kernel, shape, fused, reference, unit, ratio, and every other field as key=value. */
export function kernelCells(k: KernelRow): {
  label: [string, string];
  fused: string;
  reference: string;
  unit: string;
  ratio: string;
  other: string;
} {
  const num = (...keys: string[]) => keys.map((key) => k[key]).find((v): v is number => typeof v === 'number');
  const str = (key: string) => (typeof k[key] === 'string' ? (k[key] as string) : k[key] === undefined ? '' : JSON.stringify(k[key]));
  const fused = num('fused', 'fusedMs');
  const reference = num('reference', 'referenceMs');
  const unit = typeof k.unit === 'string' ? k.unit : 'fusedMs' in k ? 'ms' : '';
  const ratio = num('ratio');
  const known = new Set(['hidden', 'kernel', 'shape', 'fused', 'fusedMs', 'reference', 'referenceMs', 'unit', 'ratio', 'flop']);
  const other = Object.entries(k)
    .filter(([key]) => !known.has(key))
    .map(([key, v]) => `${key}=${typeof v === 'number' ? num3(v) : typeof v === 'string' ? v : JSON.stringify(v)}`);
  const flop = num('flop');
  if (flop !== undefined && unit === 'ms' && fused && reference)
    other.unshift(`GFLOP/s ${(flop / fused / 1e6).toFixed(2)} / ${(flop / reference / 1e6).toFixed(2)}`);
  return {
    label: [str('kernel'), str('shape')],
    fused: num3(fused),
    reference: num3(reference),
    unit,
    ratio: ratio === undefined ? '-' : `${ratio.toFixed(2)}x`,
    other: other.join(' '),
  };
}

/** The kernel bench at one size: how it went (its rows are in `kernels`). */
export interface KernelSection {
  hidden: number;
  heads: number;
  mode: 'quick' | 'full';
  status: Status;
  reason?: string;
  seconds?: number;
}

export interface Report {
  date: string;
  commit: string;
  mode: 'full' | 'quick' | 'smoke';
  adapter: { detail?: string; software?: boolean; error?: string };
  gpu: string;
  gpuDriver: string;
  vulkan: string;
  torch: { python?: string; cuda: string; cpu?: string };
  node: string;
  cores: number;
  loadAverageStart: number[];
  loadAverageEnd?: number[];
  budgetSeconds: number;
  elapsedSeconds?: number;
  notes: string[];
  train: TrainRow[];
  kernelSections: KernelSection[];
  kernels: KernelRow[];
  complete: boolean;
}

// ------------------------------------------------------------------------------------------------------------
// Child mode: one unit in a fresh process, results as MARK lines on stdout.
// ------------------------------------------------------------------------------------------------------------

function emit(o: unknown): void {
  process.stdout.write(MARK + JSON.stringify(o) + '\n');
}

async function child(kind: string, o: { hidden: number; heads: number; warm: number; reps: number; quick: boolean }): Promise<void> {
  const { startBackend, stopBackend } = await import('../src/backend/index.ts');
  if (kind === 'probe') {
    const info = await startBackend('webgpu');
    emit({ type: 'adapter', detail: info.detail, software: info.softwareAdapter === true });
    await stopBackend();
  } else if (kind === 'train') {
    const { stepTime } = await import('../bench/speed.ts');
    const info = await startBackend('webgpu');
    emit({ type: 'adapter', detail: info.detail, software: info.softwareAdapter === true });
    for (const optimizer of OPTIMIZERS) {
      const ms = await stepTime({ hidden: o.hidden, heads: o.heads, optimizer }, o.reps, o.warm);
      emit({ type: 'train', optimizer, stepMs: ms, tokensPerSec: (B * T) / (ms / 1000) });
    }
    await stopBackend();
  } else if (kind === 'kernels') {
    const { benchWebgpuKernels } = await import('../bench/kernels_webgpu.ts');
    const rows = await benchWebgpuKernels({ quick: o.quick, hiddenSize: o.hidden, numHeads: o.heads });
    emit({ type: 'kernels', rows });
  } else throw new Error(`unknown child unit '${kind}'`);
}

// ------------------------------------------------------------------------------------------------------------
// Parent: plans the units, runs them under the budget, writes and prints the report.
// ------------------------------------------------------------------------------------------------------------

interface Options {
  out: string;
  mode: 'full' | 'quick' | 'smoke';
  sizes: number[];
  budgetSeconds?: number;
  fullSoftware: boolean;
  torchPython?: string;
  torchCudaSkip?: string;
  torchCpu: boolean;
  gpu: string;
  /** --gpu named a GPU (scripts/gpu-bench.sh passes nvidia-smi's name, or text starting with 'none'). */
  gpuPresent: boolean;
  gpuDriver: string;
  vulkan: string;
}

/** The commit of the checkout, read from .git without running git (a worktree's .git file is followed). */
export function gitCommit(root = ROOT): string {
  try {
    let gitDir = join(root, '.git');
    if (!existsSync(gitDir)) return 'unknown (no .git)';
    if (statSync(gitDir).isFile())
      gitDir = resolve(
        root,
        readFileSync(gitDir, 'utf8')
          .replace(/^gitdir:/, '')
          .trim(),
      );
    return headOf(gitDir);
  } catch (e) {
    return `unknown (${(e as Error).message.split('\n')[0]})`;
  }
}

function headOf(gitDir: string): string {
  const head = readFileSync(join(gitDir, 'HEAD'), 'utf8').trim();
  if (!head.startsWith('ref:')) return head.slice(0, 12);
  const ref = head.slice(4).trim();
  const common = existsSync(join(gitDir, 'commondir')) ? resolve(gitDir, readFileSync(join(gitDir, 'commondir'), 'utf8').trim()) : gitDir;
  for (const dir of [gitDir, common]) {
    if (existsSync(join(dir, ref))) return readFileSync(join(dir, ref), 'utf8').trim().slice(0, 12);
  }
  for (const dir of [gitDir, common]) {
    const packed = join(dir, 'packed-refs');
    if (!existsSync(packed)) continue;
    const line = readFileSync(packed, 'utf8')
      .split('\n')
      .find((l) => l.endsWith(` ${ref}`));
    if (line) return line.slice(0, 12);
  }
  return `unknown (${ref} not found)`;
}

const fmt = (x: number | undefined, digits: number) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
/** A time or size: one decimal from 100 up, three from 1 up, three significant digits below (GPU kernels take microseconds). */
const num3 = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? '-' : Math.abs(x) >= 100 ? x.toFixed(1) : Math.abs(x) >= 1 ? x.toFixed(3) : x.toPrecision(3);
const msStep = (x: number | undefined) => fmt(x, x !== undefined && x < 10 ? 2 : 1);
const loads = () => loadavg().map((x) => Math.round(x * 100) / 100);

/** Breaks `text` into lines of at most `width` columns, the first after `label`, the rest indented like it. */
function wrap(label: string, text: string, width = 100): string[] {
  const lines: string[] = [];
  let line = label;
  for (const word of text.split(' ')) {
    if (line.length > label.length && line.length + 1 + word.length > width) {
      lines.push(line);
      line = ' '.repeat(label.length) + word;
    } else line += (line.length > label.length ? ' ' : '') + word;
  }
  lines.push(line);
  return lines;
}

/** Aligned columns; the last one is wrapped to keep lines within `width` columns. */
function table(rows: string[][], right: boolean[], width = 100): string[] {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.flatMap((r) => {
    const head = r
      .slice(0, -1)
      .map((c, i) => (right[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ');
    const last = r[r.length - 1]!;
    return wrap(`${head}  `, right[r.length - 1] ? last.padStart(w[r.length - 1]!) : last, width).map((l) => l.trimEnd());
  });
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const runLabel = (r: TrainRow) => `${r.impl} d=${r.hidden} ${r.optimizer}`;
const kernelTitle = (s: KernelSection) =>
  `fused WGSL kernels vs reference ops (webgpu), d=${s.hidden}, ${plural(s.heads, 'head')}, ${s.mode} mode` +
  (s.seconds !== undefined ? `, ${s.seconds.toFixed(0)} s` : '');

/**
 * The kernel rows as a table of at most about 100 columns: kernel and shape, then the numbers; a row whose
 * kernel and shape do not fit takes two lines (the kernel, then the shape with the numbers).
 */
function kernelTable(rows: KernelRow[], width = 100): string[] {
  const cells = rows.map(kernelCells);
  const nums = [['fused', 'reference', 'unit', 'ratio'], ...cells.map((c) => [c.fused, c.reference, c.unit, c.ratio])];
  const nw = nums[0]!.map((_, i) => Math.max(...nums.map((n) => n[i]!.length)));
  const numbers = (n: string[]) => n.map((x, i) => (i === 2 ? x.padEnd(nw[i]!) : x.padStart(nw[i]!))).join('  ');
  const labelOf = (c: ReturnType<typeof kernelCells>) => `${c.label[0]}  ${c.label[1]}`;
  const fit = width - nums[0]!.length * 2 - nw.reduce((a, b) => a + b, 0);
  const lw = Math.min(fit, Math.max('kernel  shape'.length, ...cells.map((c) => labelOf(c).length)));
  const out = [`${'kernel  shape'.padEnd(lw)}  ${numbers(nums[0]!)}`];
  for (const c of cells) {
    const label = labelOf(c);
    const tail = `${numbers([c.fused, c.reference, c.unit, c.ratio])}${c.other ? `  ${c.other}` : ''}`;
    if (label.length <= lw) out.push(`${label.padEnd(lw)}  ${tail}`.trimEnd());
    else out.push(c.label[0], `${`    ${c.label[1]}`.padEnd(lw)}  ${tail}`.trimEnd());
  }
  return out;
}

/** The plain-text report: header lines, the training table, one kernel table per size. */
export function textReport(r: Report): string {
  const out: string[] = [];
  out.push(`osp-lab GPU bench, ${r.date}, commit ${r.commit}, mode ${r.mode}${r.complete ? '' : ' (INCOMPLETE: interrupted)'}`);
  out.push(
    ...wrap(
      'adapter  ',
      r.adapter.detail ? `${r.adapter.detail}${r.adapter.software ? ' [software adapter]' : ''}` : `none: ${r.adapter.error ?? '?'}`,
    ),
  );
  out.push(...wrap('GPU      ', `${r.gpu}; driver ${r.gpuDriver}`));
  out.push(...wrap('vulkan   ', r.vulkan));
  out.push(...wrap('torch    ', `cuda: ${r.torch.cuda}${r.torch.cpu ? `; cpu: ${r.torch.cpu}` : ''}`));
  const end = r.loadAverageEnd ? `, at the end ${r.loadAverageEnd.join(' ')}` : '';
  const took = r.elapsedSeconds !== undefined ? `; took ${r.elapsedSeconds.toFixed(0)} s of a ${r.budgetSeconds} s budget` : '';
  out.push(
    ...wrap('host     ', `${r.cores} cores, Node ${r.node}, load average ${r.loadAverageStart.join(' ')} at the start${end}${took}`),
  );
  for (const n of r.notes) out.push(...wrap('note     ', n));
  out.push('');
  out.push(`training throughput: 4 layers, B=${B}, T=${T}, V=256, head_dim ${HEAD_DIM}, float32, SSNorm + EmbProj`);
  const rows = [['run', 'tokens/s', 'ms/step', 'timing']];
  for (const t of r.train) {
    rows.push(
      t.status === 'ok'
        ? [runLabel(t), fmt(t.tokensPerSec, 0), msStep(t.stepMs), t.timing ?? '']
        : [runLabel(t), t.status, '-', t.reason ?? ''],
    );
  }
  out.push(...table(rows, [false, true, true, false]));
  for (const s of r.kernelSections) {
    out.push('');
    out.push(kernelTitle(s));
    if (s.status !== 'ok') {
      out.push(...wrap(`  ${s.status}: `, s.reason ?? ''));
      continue;
    }
    out.push(...kernelTable(r.kernels.filter((k) => k.hidden === s.hidden)));
  }
  return out.join('\n') + '\n';
}

/** The same report as markdown. */
export function markdownReport(r: Report): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const out: string[] = [];
  out.push(`# osp-lab GPU bench: ${r.date}${r.complete ? '' : ' (INCOMPLETE: interrupted)'}`, '');
  out.push(`- commit: ${r.commit}; mode: ${r.mode}`);
  out.push(`- adapter: ${r.adapter.detail ? `${r.adapter.detail}${r.adapter.software ? ' (software)' : ''}` : `none: ${r.adapter.error}`}`);
  out.push(`- GPU: ${r.gpu}; driver ${r.gpuDriver}`);
  out.push(`- vulkan: ${r.vulkan}`);
  out.push(`- torch: cuda: ${r.torch.cuda}${r.torch.cpu ? `; cpu: ${r.torch.cpu}` : ''}`);
  out.push(
    `- host: ${r.cores} cores, Node ${r.node}, load average ${r.loadAverageStart.join(' ')} at the start` +
      (r.loadAverageEnd ? `, ${r.loadAverageEnd.join(' ')} at the end` : '') +
      (r.elapsedSeconds !== undefined ? `; ${r.elapsedSeconds.toFixed(0)} s of a ${r.budgetSeconds} s budget` : ''),
  );
  for (const n of r.notes) out.push(`- note: ${n}`);
  out.push('', `## Training throughput (4 layers, B=${B}, T=${T}, V=256, head_dim ${HEAD_DIM}, float32)`, '');
  out.push('| run | tokens/s | ms/step | timing |', '|---|---:|---:|---|');
  for (const t of r.train) {
    out.push(
      t.status === 'ok'
        ? `| ${runLabel(t)} | ${fmt(t.tokensPerSec, 0)} | ${msStep(t.stepMs)} | ${t.timing ?? ''} |`
        : `| ${runLabel(t)} | ${t.status} | - | ${esc(t.reason ?? '')} |`,
    );
  }
  for (const s of r.kernelSections) {
    out.push('', `## ${kernelTitle(s)}`, '');
    if (s.status !== 'ok') {
      out.push(`${s.status}: ${s.reason ?? ''}`);
      continue;
    }
    out.push('| kernel | shape | fused | reference | unit | ratio | other |', '|---|---|---:|---:|---|---:|---|');
    for (const c of r.kernels.filter((k) => k.hidden === s.hidden).map(kernelCells))
      out.push(`| ${[c.label[0], c.label[1], c.fused, c.reference, c.unit, c.ratio, c.other].map(esc).join(' | ')} |`);
  }
  return out.join('\n') + '\n';
}

/** Runs a command with a time limit; calls onResult for every MARK line (or, with raw, every stdout line). */
function runProcess(
  cmd: string,
  args: string[],
  timeoutMs: number,
  log: string,
  onLine: (line: string) => void,
): Promise<{ code: number | null; timedOut: boolean; stderrTail: string[] }> {
  return new Promise((done) => {
    appendFileSync(log, `\n$ ${cmd} ${args.join(' ')}\n`);
    const p = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    active = p;
    const tail: string[] = [];
    let timedOut = false;
    const lines = (stream: NodeJS.ReadableStream, f: (l: string) => void) => {
      let buf = '';
      stream.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          f(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      stream.on('end', () => buf && f(buf));
    };
    lines(p.stdout!, (l) => {
      appendFileSync(log, l + '\n');
      onLine(l);
    });
    lines(p.stderr!, (l) => {
      appendFileSync(log, l + '\n');
      // Dawn's notices about limits it lowered say nothing about a failure.
      if (!l.trim() || /artificially reduced/.test(l)) return;
      tail.push(l.trim());
      if (tail.length > 8) tail.shift();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    const finish = (code: number | null) => {
      clearTimeout(timer);
      active = undefined;
      done({ code, timedOut, stderrTail: tail });
    };
    p.on('error', (e) => {
      tail.push(e.message);
      finish(-1);
    });
    p.on('close', (code) => finish(code));
  });
}

let active: ChildProcess | undefined;

function parseOptions(
  argv: string[],
): Options & { child?: string; hidden: number; heads: number; warm: number; reps: number; quick: boolean } {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      quick: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      budget: { type: 'string' },
      'full-software': { type: 'boolean', default: false },
      'torch-python': { type: 'string' },
      'torch-cuda-skip': { type: 'string' },
      'torch-cpu': { type: 'boolean', default: false },
      gpu: { type: 'string' },
      'gpu-driver': { type: 'string' },
      vulkan: { type: 'string' },
      // Child mode (internal).
      child: { type: 'string' },
      hidden: { type: 'string', default: '0' },
      heads: { type: 'string', default: '0' },
      warm: { type: 'string', default: '0' },
      reps: { type: 'string', default: '0' },
    },
  });
  const positive = (flag: string, s: string) => {
    if (!/^[1-9][0-9]*$/.test(s)) throw new Error(`--${flag} must be a positive integer, got '${s}'`);
    return Number(s);
  };
  const mode = v.smoke ? 'smoke' : v.quick ? 'quick' : 'full';
  const sizes = (v.sizes ?? (mode === 'smoke' ? '64' : '256,512')).split(',').map((s) => positive('sizes', s.trim()));
  for (const d of sizes) if (d % HEAD_DIM !== 0) throw new Error(`--sizes: ${d} is not a multiple of the head dimension ${HEAD_DIM}`);
  return {
    out: resolve(v.out ?? process.env.OUT ?? join(ROOT, 'bench/gpu-bench-out')),
    mode,
    sizes,
    budgetSeconds: v.budget === undefined ? undefined : positive('budget', v.budget),
    fullSoftware: v['full-software'],
    torchPython: v['torch-python'] || undefined,
    torchCudaSkip: v['torch-cuda-skip'] || undefined,
    torchCpu: v['torch-cpu'],
    gpu: v.gpu || 'not probed (scripts/gpu-bench.sh runs nvidia-smi)',
    gpuPresent: !!v.gpu && !/^none\b/i.test(v.gpu),
    gpuDriver: v['gpu-driver'] || 'unknown',
    vulkan: v.vulkan || 'not probed (scripts/gpu-bench.sh checks the loader and ICDs)',
    child: v.child,
    hidden: Number(v.hidden),
    heads: Number(v.heads),
    warm: Number(v.warm),
    reps: Number(v.reps),
    quick: mode !== 'full',
  };
}

async function main(o: Options): Promise<number> {
  const t0 = performance.now();
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  mkdirSync(o.out, { recursive: true });
  const base = join(o.out, `gpu-bench-${stamp.replace(/:/g, '-')}`);
  const log = `${base}.log`;
  writeFileSync(log, `gpu-bench ${stamp}: the children's output\n`);
  const elapsed = () => (performance.now() - t0) / 1000;
  const say = (s: string) => console.log(`[gpu-bench ${elapsed().toFixed(0).padStart(4)} s] ${s}`);

  const report: Report = {
    date: stamp,
    commit: gitCommit(),
    mode: o.mode,
    adapter: {},
    gpu: o.gpu,
    gpuDriver: o.gpuDriver,
    vulkan: o.vulkan,
    torch: {
      python: o.torchPython,
      cuda: o.torchCudaSkip ? `skipped: ${o.torchCudaSkip}` : o.torchPython ? `${o.torchPython}` : 'skipped: no --torch-python given',
    },
    node: process.version,
    cores: availableParallelism(),
    loadAverageStart: loads(),
    budgetSeconds: 0,
    notes: [],
    train: [],
    kernelSections: [],
    kernels: [],
    complete: false,
  };
  const save = () => {
    report.elapsedSeconds = elapsed();
    report.loadAverageEnd = loads();
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(`${base}.md`, markdownReport(report));
  };
  const finish = (): number => {
    save();
    console.log('\n' + textReport(report));
    console.log(`written: ${base}.json, ${base}.md (children's output: ${base}.log)`);
    const failed =
      report.train.some((t) => t.status === 'failed' || t.status === 'timeout') ||
      report.kernelSections.some((s) => s.status === 'failed' || s.status === 'timeout');
    const webgpu = report.train.some((t) => t.impl === 'webgpu' && t.status === 'ok') || report.kernels.length > 0;
    return failed || !webgpu ? 1 : 0;
  };
  const interrupt = (signal: string) => {
    active?.kill('SIGKILL');
    report.notes.push(`interrupted by ${signal} after ${elapsed().toFixed(0)} s: the rows still to run are missing`);
    finish();
    process.exit(130);
  };
  process.on('SIGINT', () => interrupt('SIGINT'));
  process.on('SIGTERM', () => interrupt('SIGTERM'));

  // The adapter decides the repetitions and the budget, so it is probed first.
  say('probing the WebGPU adapter (startBackend("webgpu"))');
  const probe = await runProcess(process.execPath, [...process.execArgv, SELF, '--child', 'probe'], 120_000, log, (l) => {
    if (l.startsWith(MARK)) {
      const m = JSON.parse(l.slice(MARK.length)) as { detail: string; software: boolean };
      report.adapter = { detail: m.detail, software: m.software };
    }
  });
  if (!report.adapter.detail) {
    report.adapter = {
      error: probe.timedOut ? 'the probe timed out after 120 s' : probe.stderrTail.at(-1) || `the probe exited with ${probe.code}`,
    };
  }
  const software = report.adapter.software === true;
  const hardware = report.adapter.detail !== undefined && !software;
  say(`adapter: ${report.adapter.detail ?? `none (${report.adapter.error})`}${software ? ' [software]' : ''}`);
  if (software && o.gpuPresent) {
    report.notes.push(
      `a GPU is present (${o.gpu}) but Dawn chose a software adapter: the GPU's Vulkan driver (ICD) is not visible to ` +
        'the Vulkan loader (see the vulkan line; in a container, NVIDIA_DRIVER_CAPABILITIES must include graphics)',
    );
  }

  // Repetitions and budget (see the file's comment).
  const budget = o.budgetSeconds ?? (hardware && o.mode !== 'smoke' ? 450 : 3600);
  report.budgetSeconds = budget;
  const trainTiming = (d: number) => {
    if (o.mode === 'smoke') return { warm: 1, reps: 1 };
    if (software) return d <= 256 ? { warm: 1, reps: 3 } : { warm: 1, reps: 1 };
    return o.mode === 'quick' ? { warm: 2, reps: 5 } : { warm: 3, reps: 10 };
  };
  const torchTiming =
    o.mode === 'smoke' ? { warmup: 1, steps: 2 } : o.mode === 'quick' ? { warmup: 3, steps: 10 } : { warmup: 5, steps: 30 };
  const kernelMode: 'quick' | 'full' = o.mode === 'full' && hardware ? 'full' : 'quick';
  if (software && o.mode !== 'smoke') {
    report.notes.push(
      'software adapter: fewer repetitions (1 warm-up step, the median of 3 steps at d <= 256, a single step above), ' +
        `the kernel bench in quick mode${o.fullSoftware ? '' : ' and only at d <= 256 (--full-software runs the larger sizes too)'}`,
    );
  }
  const timingText = (t: { warm: number; reps: number }) =>
    t.reps === 1 ? `1 step after ${t.warm} warm-up` : `median of ${t.reps} after ${t.warm} warm-up`;
  const remainingMs = () => budget * 1000 - elapsed() * 1000;
  const overBudget = () => `the ${budget} s time budget was spent (--budget)`;
  const lastError = (r: { code: number | null; timedOut: boolean; stderrTail: string[] }, limitMs: number) =>
    r.timedOut ? `timed out after ${(limitMs / 1000).toFixed(0)} s` : r.stderrTail.at(-1) || `exited with status ${r.code}`;

  const webgpuTrain = async (d: number) => {
    const heads = d / HEAD_DIM;
    const rows = OPTIMIZERS.map((optimizer): TrainRow => ({ impl: 'webgpu', hidden: d, heads, optimizer, status: 'skipped' }));
    report.train.push(...rows);
    if (!report.adapter.detail) {
      for (const r of rows) r.reason = `no WebGPU adapter: ${report.adapter.error}`;
      return;
    }
    if (remainingMs() < 5000) {
      for (const r of rows) r.reason = overBudget();
      return;
    }
    const t = trainTiming(d);
    say(`webgpu training d=${d} (${plural(heads, 'head')}), AdamW and Muon: ${timingText(t)}`);
    const limit = remainingMs();
    const args = ['--child', 'train', '--hidden', String(d), '--heads', String(heads), '--warm', String(t.warm), '--reps', String(t.reps)];
    const r = await runProcess(process.execPath, [...process.execArgv, SELF, ...args], limit, log, (l) => {
      if (!l.startsWith(MARK)) return;
      const m = JSON.parse(l.slice(MARK.length)) as { type: string; optimizer: OptimizerKind; stepMs: number; tokensPerSec: number };
      if (m.type !== 'train') return;
      const row = rows.find((x) => x.optimizer === m.optimizer)!;
      Object.assign(row, { status: 'ok', stepMs: m.stepMs, tokensPerSec: m.tokensPerSec, timing: timingText(t) });
      say(`  webgpu d=${d} ${m.optimizer}: ${m.tokensPerSec.toFixed(0)} tokens/s, ${m.stepMs.toFixed(1)} ms/step`);
    });
    for (const row of rows.filter((x) => x.status !== 'ok')) {
      row.status = r.timedOut ? 'timeout' : 'failed';
      row.reason = lastError(r, limit);
    }
  };

  const pytorch = async (d: number, device: 'cuda' | 'cpu') => {
    const heads = d / HEAD_DIM;
    const impl = device === 'cuda' ? 'pytorch-cuda' : 'pytorch-cpu';
    const python = o.torchPython;
    for (const optimizer of OPTIMIZERS) {
      const row: TrainRow = { impl, hidden: d, heads, optimizer, status: 'skipped' };
      report.train.push(row);
      if (device === 'cuda' && o.torchCudaSkip) row.reason = o.torchCudaSkip;
      else if (!python) row.reason = 'no --torch-python given (scripts/gpu-bench.sh finds one)';
      else if (remainingMs() < 5000) row.reason = overBudget();
      if (row.reason || !python) continue;
      say(`${impl} d=${d} ${optimizer}: median of ${torchTiming.steps} after ${torchTiming.warmup} warm-up`);
      const args = [
        'bench/torch_reference.py',
        ...['--device', device, '--hidden', String(d), '--heads', String(heads), '--layers', '4', '--vocab', '256'],
        ...['--batch', String(B), '--seq', String(T), '--optimizer', optimizer],
        ...['--steps', String(torchTiming.steps), '--warmup', String(torchTiming.warmup)],
      ];
      let result: { stepMs?: number; tokensPerSec?: number; torch?: string; gpu?: string; threads?: number; tf32?: boolean } = {};
      const limit = remainingMs();
      const r = await runProcess(python, args, limit, log, (l) => {
        if (l.trim().startsWith('{')) result = JSON.parse(l);
      });
      if (r.code === 0 && result.stepMs !== undefined) {
        Object.assign(row, {
          status: 'ok',
          stepMs: result.stepMs,
          tokensPerSec: result.tokensPerSec,
          timing: `median of ${torchTiming.steps} after ${torchTiming.warmup} warm-up`,
        });
        const what =
          device === 'cuda'
            ? `torch ${result.torch} on ${result.gpu}, TF32 ${result.tf32 ? 'on' : 'off'}`
            : `torch ${result.torch}, ${result.threads} threads`;
        report.torch[device] = `${python}: ${what}`;
        say(`  ${impl} d=${d} ${optimizer}: ${result.tokensPerSec!.toFixed(0)} tokens/s, ${result.stepMs.toFixed(1)} ms/step`);
      } else {
        row.status = r.timedOut ? 'timeout' : 'failed';
        row.reason = lastError(r, limit);
      }
    }
  };

  const kernels = async (d: number) => {
    const heads = d / HEAD_DIM;
    const s: KernelSection = { hidden: d, heads, mode: kernelMode, status: 'skipped' };
    report.kernelSections.push(s);
    if (!report.adapter.detail) s.reason = `no WebGPU adapter: ${report.adapter.error}`;
    else if (software && d > 256 && !o.fullSoftware && o.mode !== 'smoke')
      s.reason = `software adapter: the kernel bench at d=${d} takes a quarter of an hour and more on lavapipe (--full-software runs it)`;
    else if (remainingMs() < 5000) s.reason = overBudget();
    if (s.reason) return;
    say(`kernel bench d=${d} (${plural(heads, 'head')}), ${kernelMode} mode`);
    const started = elapsed();
    const limit = remainingMs();
    const args = ['--child', 'kernels', '--hidden', String(d), '--heads', String(heads), ...(kernelMode === 'quick' ? ['--quick'] : [])];
    const r = await runProcess(process.execPath, [...process.execArgv, SELF, ...args], limit, log, (l) => {
      if (!l.startsWith(MARK)) return;
      const m = JSON.parse(l.slice(MARK.length)) as { type: string; rows: Record<string, unknown>[] };
      if (m.type === 'kernels') {
        report.kernels.push(...m.rows.map((k) => ({ hidden: d, ...k })));
        s.status = 'ok';
      }
    });
    s.seconds = elapsed() - started;
    if (s.status !== 'ok') {
      s.status = r.timedOut ? 'timeout' : 'failed';
      s.reason = lastError(r, limit);
    }
    say(
      `  kernel bench d=${d}: ${s.status}${s.reason ? ` (${s.reason})` : `, ${report.kernels.filter((k) => k.hidden === d).length} rows`}`,
    );
  };

  // Throughput first (the headline numbers), then the kernel benches, each size in turn.
  for (const d of o.sizes) {
    await webgpuTrain(d);
    save();
    await pytorch(d, 'cuda');
    if (o.torchCpu) await pytorch(d, 'cpu');
    save();
  }
  for (const d of o.sizes) {
    await kernels(d);
    save();
  }
  report.complete = true;
  return finish();
}

if (process.argv[1] && resolve(process.argv[1]) === SELF) {
  const o = parseOptions(process.argv.slice(2));
  if (o.child) {
    try {
      await child(o.child, o);
      process.exit(0);
    } catch (e) {
      console.error((e as Error).stack ?? String(e));
      console.error(`gpu-bench child '${o.child}' failed: ${(e as Error).message.split('\n')[0]}`);
      process.exit(1);
    }
  } else process.exit(await main(o));
}
