/**
 * npm run reliability: attacks the promises osp-lab makes about crashes, corruption, full disks,
 * poisoned data, malformed files, path safety and concurrency, and writes RELIABILITY.md (promise,
 * cases tried, failures) itself. Exits non-zero when any case fails.
 *
 * Options: --quick (fewer cases; what .ci/run uses), --seed N, --only 1,5f (a subset; RELIABILITY.md is
 * then not written).
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { resolveRunConfig } from '../src/train/config.ts';
import { readShard, writeShard } from '../src/data/sources.ts';
import { OspError } from '../src/errors.ts';
import { writeHfCheckpoint } from '../src/export/hf.ts';
import { readHfCheckpoint } from '../src/model/hf.ts';
import { foldToLlama, modelWeights } from '../src/model/fold.ts';
import { sha256 } from '../src/io/atomic.ts';
import { decodeGguf, encodeGguf, str, u32 } from '../src/io/gguf.ts';
import { decodeSafetensors, encodeSafetensors, f32Entry } from '../src/io/safetensors.ts';
import { createModel } from '../src/model/transformer.ts';
import { expandTrials, SweepSpecSchema } from '../src/sweep/spec.ts';
import { parseConfig } from '../src/utils/parse_config.ts';
import { runSweep } from '../src/sweep/run.ts';
import type { Callback, TrainContext } from '../src/train/callback.ts';
import { listCheckpoints, readCheckpoint } from '../src/train/checkpoint.ts';
import { train } from '../src/train/run.ts';
import { startBackend } from '../src/backend/index.ts';

const { values: args } = parseArgs({
  options: { quick: { type: 'boolean' }, seed: { type: 'string', default: '1' }, only: { type: 'string' } },
});
/** --only 1,5f: run the promises whose number starts with one of these (for debugging one of them). */
const only = args.only?.split(',');
const quick = Boolean(args.quick);
let seed = Number(args.seed);
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const quiet = () => {};
const tmp = (p: string) => mkdtempSync(join(tmpdir(), `osp-rel-${p}-`));

interface Row {
  promise: string;
  tried: number;
  failures: number;
  notes: string[];
}
const rows: Row[] = [];

/** Runs one promise's cases; a case returns nothing when it held and a string saying how it failed. */
async function promise(name: string, cases: () => AsyncGenerator<string | undefined>): Promise<Row | undefined> {
  if (only && !only.some((p) => name.startsWith(p))) return undefined;
  const row: Row = { promise: name, tried: 0, failures: 0, notes: [] };
  rows.push(row);
  const t0 = performance.now();
  try {
    for await (const failure of cases()) {
      row.tried++;
      if (failure !== undefined) {
        row.failures++;
        if (row.notes.length < 5) row.notes.push(failure);
      }
    }
  } catch (e) {
    row.failures++;
    row.notes.push(`suite error: ${(e as Error).stack ?? e}`);
  }
  console.log(`${name}: ${row.tried} cases, ${row.failures} failures (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  for (const n of row.notes) console.log(`  - ${n}`);
  return row;
}

/** A tiny run config: seconds per run on the cpu backend, a checkpoint every 2 steps. */
function tinyConfig(steps: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'run',
    seed: 7,
    backend: 'cpu',
    steps,
    model: { hiddenSize: 32, numLayers: 2, numHeads: 4, maxSeqLen: 32, norm: 'ssnorm', embedding: 'embproj' },
    optimizer: { muon: { lr: 0.02 }, adamw: { lr: 0.01 } },
    schedule: { kind: 'cosine', warmupSteps: 2 },
    batch: { size: 4, seqLen: 32 },
    eval: { every: 0, batches: 1 },
    checkpoint: { every: 2, keep: 3 },
    monitor: { every: 0 },
    logging: { every: 1, console: 'quiet', histogramsEvery: 0 },
    ...extra,
  };
}

const osp = (argv: string[]) => spawn(process.execPath, ['bin/osp.mjs', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
const ospSync = (argv: string[], shell?: string) =>
  shell
    ? spawnSync('bash', ['-c', `${shell} ${[process.execPath, 'bin/osp.mjs', ...argv].map((a) => `'${a}'`).join(' ')}`], {
        encoding: 'utf8',
      })
    : spawnSync(process.execPath, ['bin/osp.mjs', ...argv], { encoding: 'utf8' });
const fileHash = (p: string) => sha256(readFileSync(p));

// 1. Crash anywhere --------------------------------------------------------------------------
await promise('1. SIGKILL at random moments; resume continues the exact trajectory (cpu)', async function* () {
  const dir = tmp('crash');
  const steps = 160;
  // A checkpoint every step, so that a good share of the kills land inside a checkpoint write.
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify(
      tinyConfig(steps, { out: dir, checkpoint: { every: 1, keep: 3 }, logging: { every: 10, console: 'quiet', histogramsEvery: 0 } }),
    ),
  );
  const t0 = performance.now();
  const ref = ospSync(['train', '--config', join(dir, 'config.json'), '--set', 'name=ref']);
  if (ref.status !== 0) throw new Error(`reference run failed: ${ref.stderr}`);
  // Kill moments are drawn over the life of a whole process (startup included): 2% to 14% of the
  // uninterrupted run's wall time, so that 20 kills fit in one run (at 5-35% it finished after 6).
  // Attempts killed during startup make no progress, which is fine: after the last kill the run is
  // resumed to completion.
  const lifetime = performance.now() - t0;
  const runDir = join(dir, 'crash');
  const kills = quick ? 8 : 20;
  let duringWrite = 0;
  let restarts = 0;
  for (let k = 0; k < kills; k++) {
    const fresh = !existsSync(join(runDir, 'checkpoints'));
    if (fresh) rmSync(runDir, { recursive: true, force: true });
    const child = osp(fresh ? ['train', '--config', join(dir, 'config.json'), '--set', 'name=crash'] : ['train', '--resume', runDir]);
    const delay = lifetime * (0.02 + 0.12 * rand());
    // Every third kill aims at a checkpoint write: it fires the moment a temporary checkpoint
    // directory appears (inotify), i.e. while the checkpoint's files are being written.
    const aimAtWrite = k % 3 === 2 && !fresh;
    const exited = await new Promise<number | null>((res) => {
      const kill = () => child.kill('SIGKILL');
      const timer = aimAtWrite ? undefined : setTimeout(kill, delay);
      const watcher = aimAtWrite
        ? watch(join(runDir, 'checkpoints'), (_event, name) => {
            if (name?.startsWith('.tmp-')) kill();
          })
        : undefined;
      child.on('exit', (code) => {
        clearTimeout(timer);
        watcher?.close();
        res(code);
      });
    });
    // A temporary checkpoint directory left behind means the kill interrupted a checkpoint write
    // (the next resume removes it).
    if (existsSync(join(runDir, 'checkpoints')) && readdirSync(join(runDir, 'checkpoints')).some((n) => n.startsWith('.tmp-')))
      duringWrite++;
    if (fresh) restarts++;
    if (exited === 0) break; // the run finished before this kill
    // Every checkpoint left behind must be complete and verify.
    for (const { dir: c } of listCheckpoints(runDir)) {
      try {
        readCheckpoint(c);
      } catch (e) {
        yield `kill ${k}: a completed checkpoint does not verify: ${(e as Error).message}`;
      }
    }
    yield undefined;
  }
  // Finish it (from scratch if no checkpoint was ever completed).
  const resumable = existsSync(join(runDir, 'checkpoints'));
  if (!resumable) rmSync(runDir, { recursive: true, force: true });
  const last = ospSync(resumable ? ['train', '--resume', runDir] : ['train', '--config', join(dir, 'config.json'), '--set', 'name=crash']);
  if (last.status !== 0) yield `final resume failed: ${last.stderr.trim()}`;
  const final = `checkpoints/step_${String(steps).padStart(8, '0')}`;
  for (const f of ['model.safetensors', 'optimizer.safetensors']) {
    const a = fileHash(join(dir, 'ref', final, f));
    const b = fileHash(join(runDir, final, f));
    yield a === b ? undefined : `final ${f} differs from the uninterrupted run`;
  }
  rows[rows.length - 1]!.notes.push(
    `${duringWrite} kill(s) landed during a checkpoint write; ${restarts} start(s) before any checkpoint existed`,
  );
  rmSync(dir, { recursive: true, force: true });
});

// 2. Corruption ------------------------------------------------------------------------------
await promise('2. truncated or bit-flipped checkpoint files are detected; resume falls back and says so', async function* () {
  const dir = tmp('corrupt');
  const base = await train({ config: tinyConfig(8, { out: dir, checkpoint: { every: 2, keep: 2 } }), log: quiet });
  const cases = quick ? 12 : 40;
  for (let i = 0; i < cases; i++) {
    const copy = join(dir, `case${i}`);
    cpSync(base.runDir, copy, { recursive: true });
    const [newest, previous] = listCheckpoints(copy);
    const files = ['model.safetensors', 'optimizer.safetensors', 'state.json'];
    const target = join(newest!.dir, files[i % 3]!);
    const bytes = readFileSync(target);
    if (i % 2 === 0) truncateSync(target, Math.floor(rand() * bytes.length));
    else {
      const at = Math.floor(rand() * bytes.length);
      bytes[at]! ^= 1 << Math.floor(rand() * 8);
      writeFileSync(target, bytes);
    }
    const lines: string[] = [];
    try {
      const r = await train({ resume: copy, overrides: ['steps=9'], extendSchedule: true, log: (l) => lines.push(l) });
      if (r.resumedFrom !== previous!.dir)
        yield `case ${i} (${target}): resumed from ${r.resumedFrom}, not the previous good ${previous!.dir}`;
      else if (!lines.some((l) => l.includes('skipping checkpoint'))) yield `case ${i}: the fallback was not reported`;
      else yield undefined;
    } catch (e) {
      yield `case ${i}: resume failed: ${(e as Error).message}`;
    }
    rmSync(copy, { recursive: true, force: true });
  }
  rmSync(dir, { recursive: true, force: true });
});

// 3. Full disk -------------------------------------------------------------------------------
await promise('3. a checkpoint write that fails for lack of space (file-size limit) leaves the previous one intact', async function* () {
  const dir = tmp('disk');
  const base = await train({
    config: tinyConfig(4, { out: dir, logging: { every: 1, console: 'quiet', tensorboard: false } }),
    log: quiet,
  });
  const before = listCheckpoints(base.runDir)[0]!;
  const hashes = ['model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => fileHash(join(before.dir, f)));
  // A file-size limit at half the model file's size (bash counts 1024-byte blocks): the next
  // checkpoint's first large write fails with EFBIG, as on a full disk.
  const limit = Math.floor(readFileSync(join(before.dir, 'model.safetensors')).length / 2048);
  const r = ospSync(['train', '--resume', base.runDir, '--set', 'steps=8', '--extend-schedule'], `ulimit -f ${limit};`);
  yield r.status === 2 && /could not be written .*EFBIG/.test(r.stderr)
    ? undefined
    : `expected a clear EFBIG error and status 2, got ${r.status}: ${r.stderr.trim()}`;
  const after = ['model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => fileHash(join(before.dir, f)));
  yield after.join() === hashes.join() ? undefined : 'the previous checkpoint changed';
  try {
    readCheckpoint(before.dir);
    yield undefined;
  } catch (e) {
    yield `the previous checkpoint no longer loads: ${(e as Error).message}`;
  }
  yield readdirSync(join(base.runDir, 'checkpoints')).some((n) => n.startsWith('.tmp-'))
    ? 'a temporary checkpoint directory was left behind'
    : undefined;
  const resumed = await train({ resume: base.runDir, overrides: ['steps=6'], extendSchedule: true, log: quiet });
  yield resumed.resumedFrom === before.dir ? undefined : `resumed from ${resumed.resumedFrom}`;
  rmSync(dir, { recursive: true, force: true });
});

// 4. Poisoned data ---------------------------------------------------------------------------
await promise('4. a batch that produces NaN/Inf never changes the weights; the guard counts it', async function* () {
  const dir = tmp('poison');
  const poisoned = new Set<number>();
  while (poisoned.size < (quick ? 4 : 10)) poisoned.add(1 + Math.floor(rand() * 28));
  let before: Float32Array[] = [];
  const failures: string[] = [];
  const snapshot = async (ctx: TrainContext) =>
    Promise.all([...ctx.model.params.values()].map(async (p) => Float32Array.from((await p.data()) as Float32Array)));
  const poison: Callback = {
    name: 'poison',
    async onTrainStart(ctx) {
      before = await snapshot(ctx); // step 1 may be poisoned: compare it with the initial weights
      const loss = ctx.model.loss.bind(ctx.model);
      // The step about to run is ctx.step + 1: poisoned steps give Inf or NaN loss and gradients.
      ctx.model.loss = (x, y, h) =>
        poisoned.has(ctx.step + 1) ? (tf.mul(loss(x, y, h), ctx.step % 2 ? NaN : Infinity) as tf.Scalar) : loss(x, y, h);
    },
    async onStepEnd(ctx) {
      if (poisoned.has(ctx.step)) {
        const after = await snapshot(ctx);
        if (after.some((w, i) => w.some((v, j) => v !== before[i]![j]))) failures.push(`step ${ctx.step}: weights changed`);
      }
      before = await snapshot(ctx);
    },
  };
  const s = await train({ config: tinyConfig(30, { out: dir }), callbacks: [poison], log: quiet });
  for (const step of poisoned) yield failures.find((f) => f.startsWith(`step ${step}:`));
  yield s.skippedSteps.nonfinite === poisoned.size ? undefined : `guard counted ${s.skippedSteps.nonfinite}, expected ${poisoned.size}`;
  rmSync(dir, { recursive: true, force: true });
});

// 5. Malformed input, property-based ---------------------------------------------------------
/** Runs `fn` on fast-check inputs; only errors of the `clean` classes (or success) are allowed. */
async function* fuzz<T>(
  arb: fc.Arbitrary<T>,
  n: number,
  fn: (x: T) => unknown,
  clean: (e: unknown) => boolean,
): AsyncGenerator<string | undefined> {
  for (const x of fc.sample(arb, { numRuns: n, seed: Math.floor(rand() * 2 ** 31) })) {
    const t0 = performance.now();
    try {
      fn(x);
    } catch (e) {
      if (!clean(e)) {
        yield `unclean ${(e as Error).constructor?.name}: ${(e as Error).message?.slice(0, 160)}`;
        continue;
      }
    }
    const ms = performance.now() - t0;
    yield ms > 2000 ? `a case took ${ms.toFixed(0)} ms (hang?)` : undefined;
  }
}
const isOsp = (e: unknown) => e instanceof OspError;
const n = quick ? 500 : 3000;

/** Random mutations of valid bytes: truncation, bit flips, overwritten u64 size fields. */
function mutations(input: Uint8Array): fc.Arbitrary<Uint8Array> {
  // A plain Uint8Array copy: Buffer.slice returns a view, and mutating it would corrupt the original.
  const valid = Uint8Array.from(input);
  return fc.oneof(
    fc.nat({ max: valid.length }).map((k) => valid.slice(0, k)),
    fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 }).map((flips) => {
      const b = valid.slice();
      for (const [at, bit] of flips) b[at]! ^= 1 << bit;
      return b;
    }),
    fc.tuple(fc.nat({ max: Math.max(0, valid.length - 8) }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map(([at, v]) => {
      const b = valid.slice();
      new DataView(b.buffer).setBigUint64(at, v, true);
      return b;
    }),
  );
}

const jsonValue = fc.jsonValue({ maxDepth: 3 });
await promise('5a. configs: random JSON and mutated valid configs give only ConfigError', async function* () {
  const valid = tinyConfig(10);
  const mutated = fc
    .tuple(
      fc.constantFrom(
        ...[
          'model',
          'optimizer',
          'batch',
          'schedule',
          'data',
          'guard',
          'steps',
          'name',
          'model.hiddenSize',
          'optimizer.muon.lr',
          'optimizer.routing',
          'data.train',
        ],
      ),
      jsonValue,
    )
    .map(([path, v]) => {
      const c = structuredClone(valid) as Record<string, unknown>;
      const keys = path.split('.');
      let node = c as Record<string, unknown>;
      for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
      node[keys[keys.length - 1]!] = v;
      return c;
    });
  yield* fuzz(fc.oneof(jsonValue, mutated), n, (c) => resolveRunConfig(c), isOsp);
});
await promise('5b. sweep specs: random and mutated specs give only ConfigError', async function* () {
  const dir = tmp('spec');
  const spec = fc.record({
    name: fc.oneof(fc.string(), fc.constant('s')),
    base: fc.oneof(fc.constant(tinyConfig(4)), jsonValue),
    grid: fc.option(
      fc.dictionary(fc.constantFrom('seed', 'model.hiddenSize', 'model.widht', '../x', ''), fc.array(jsonValue, { maxLength: 3 })),
    ),
    variants: fc.option(
      fc.array(fc.record({ name: fc.oneof(fc.string(), fc.constantFrom('..', 'a/b', 'ok')), set: fc.dictionary(fc.string(), jsonValue) }), {
        maxLength: 3,
      }),
    ),
  });
  yield* fuzz(spec, quick ? 300 : 1500, (s) => expandTrials(parseConfig(SweepSpecSchema, s, 'sweep'), dir), isOsp);
  rmSync(dir, { recursive: true, force: true });
});
await promise('5c. safetensors: mutated files give only FormatError, no unbounded allocation', async function* () {
  const valid = encodeSafetensors(
    [
      ['a', f32Entry([3, 4], new Float32Array(12).fill(1))],
      ['b', f32Entry([5], new Float32Array(5))],
    ],
    { format: 'pt' },
  );
  const heap0 = process.memoryUsage().rss;
  yield* fuzz(mutations(valid), n, (b) => decodeSafetensors(b), isOsp);
  const grew = (process.memoryUsage().rss - heap0) / 2 ** 20;
  yield grew > 512 ? `resident memory grew by ${grew.toFixed(0)} MiB` : undefined;
});
await promise('5d. GGUF: mutated files give only FormatError, no unbounded allocation', async function* () {
  const valid = encodeGguf({
    kv: [
      ['general.architecture', str('llama')],
      ['x', u32(3)],
    ],
    tensors: [{ name: 't', shape: [2, 32], type: 'Q8_0', data: new Float32Array(64).fill(0.5) }],
  });
  yield* fuzz(mutations(valid), n, (b) => decodeGguf(b), isOsp);
});
await promise('5e. .bin token shards: mutated files give only DataError', async function* () {
  const dir = tmp('shard');
  const good = join(dir, 'good.bin');
  writeShard(
    good,
    Uint16Array.from({ length: 300 }, (_, i) => i % 258),
  );
  const valid = readFileSync(good);
  let i = 0;
  yield* fuzz(
    mutations(valid),
    quick ? 300 : 1500,
    (b) => {
      const p = join(dir, `m${i++ % 4}.bin`);
      writeFileSync(p, b);
      readShard(p, { vocabSize: 258 });
    },
    isOsp,
  );
  rmSync(dir, { recursive: true, force: true });
});
await promise('5f. Hugging Face checkpoint directories: mutated config.json and weights give only clean errors', async function* () {
  await startBackend('cpu');
  const dir = tmp('hf');
  const model = createModel({ hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 8 }, { seed: 1 }); // the byte tokenizer's 258 ids
  const folded = foldToLlama(model.config, await modelWeights(model));
  model.dispose();
  const good = join(dir, 'good');
  writeHfCheckpoint(good, folded.config, folded.weights);
  const config = readFileSync(join(good, 'config.json'));
  const weights = readFileSync(join(good, 'model.safetensors'));
  const target = join(dir, 'case');
  cpSync(good, target, { recursive: true });
  const arb = fc.oneof(
    mutations(config).map((b) => ['config.json', b] as const),
    mutations(weights).map((b) => ['model.safetensors', b] as const),
    fc
      .constantFrom(...['num_hidden_layers', 'hidden_size', 'vocab_size', 'num_attention_heads'])
      .chain((k) =>
        jsonValue.map((v) => ['config.json', Buffer.from(JSON.stringify({ ...JSON.parse(config.toString()), [k]: v }))] as const),
      ),
  );
  yield* fuzz(
    arb,
    quick ? 300 : 1500,
    ([file, bytes]) => {
      writeFileSync(join(target, 'config.json'), file === 'config.json' ? bytes : config);
      writeFileSync(join(target, 'model.safetensors'), file === 'model.safetensors' ? bytes : weights);
      readHfCheckpoint(target);
    },
    isOsp,
  );
  rmSync(dir, { recursive: true, force: true });
});

// 6. Path safety -----------------------------------------------------------------------------
await promise('6. run and trial names that would escape their directory are rejected', async function* () {
  const escaping = fc.oneof(
    fc.constantFrom('..', '../x', 'a/../../b', '/etc/passwd', '.hidden', 'a\\b', 'x/y', '', '.', '-rf'),
    fc.string().map((s) => `${s}/../${s}`),
  );
  for (const name of fc.sample(escaping, { numRuns: quick ? 100 : 500, seed: 3 })) {
    let runRejected = false;
    try {
      resolveRunConfig({ name });
    } catch (e) {
      runRejected = e instanceof OspError;
    }
    let trialRejected = false;
    try {
      expandTrials(parseConfig(SweepSpecSchema, { base: tinyConfig(2), variants: [{ name, set: {} }] }, 'sweep'), tmpdir());
    } catch (e) {
      trialRejected = e instanceof OspError;
    }
    yield runRejected && trialRejected
      ? undefined
      : `name ${JSON.stringify(name)} accepted (run: ${!runRejected}, trial: ${!trialRejected})`;
  }
});

// 7. Concurrency -----------------------------------------------------------------------------
await promise(
  '7. a second sweep or training on one directory is refused; a stale lock from a killed process is cleared',
  async function* () {
    const dir = tmp('lock');
    // Two trainings.
    const first = await train({ config: tinyConfig(2, { out: dir }), log: quiet });
    const running = train({ resume: first.runDir, overrides: ['steps=30'], extendSchedule: true, log: quiet });
    const second = await train({ resume: first.runDir, overrides: ['steps=31'], extendSchedule: true, log: quiet }).then(
      () => 'the second training was not refused',
      (e: Error) => (/already running/.test(e.message) ? undefined : `unexpected error: ${e.message}`),
    );
    yield second;
    await running;
    // Two sweeps.
    const specPath = join(dir, 'spec.json');
    writeFileSync(specPath, JSON.stringify({ name: 's', base: tinyConfig(2), variants: [{ name: 'a', set: {} }] }));
    const sweep = runSweep({ spec: specPath, out: join(dir, 'sweep'), parallel: 1, log: quiet });
    yield await runSweep({ spec: specPath, out: join(dir, 'sweep'), parallel: 1, log: quiet }).then(
      () => 'the second sweep was not refused',
      (e: Error) => (/already running/.test(e.message) ? undefined : `unexpected error: ${e.message}`),
    );
    await sweep;
    // A training killed while it holds the lock: the next resume clears the stale lock and runs.
    const child = osp(['train', '--resume', first.runDir, '--set', 'steps=200', '--extend-schedule']);
    // Kill it once it holds the lock (startup takes a second or more).
    for (let waited = 0; waited < 30_000 && !existsSync(join(first.runDir, '.lock')); waited += 100)
      await new Promise((r) => setTimeout(r, 100));
    const held = existsSync(join(first.runDir, '.lock'));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const lines: string[] = [];
    try {
      await train({ resume: first.runDir, overrides: ['steps=32'], extendSchedule: true, log: (l) => lines.push(l) });
      yield held && lines.some((l) => /stale|not running|cleared/i.test(l))
        ? undefined
        : `stale lock not reported (held before kill: ${held}): ${lines.join(' | ')}`;
    } catch (e) {
      yield `resume after a killed training failed: ${(e as Error).message}`;
    }
    rmSync(dir, { recursive: true, force: true });
  },
);

// Report -------------------------------------------------------------------------------------
const table = [
  '# Reliability',
  '',
  `Written by \`npm run reliability${quick ? ' -- --quick' : ''}\` (reliability/run.ts) on ${new Date().toISOString().slice(0, 10)}, seed ${args.seed}.`,
  'Each promise is attacked with the cases counted here; a failure is a case where the promise did not hold.',
  '',
  '| promise | cases tried | failures | notes |',
  '|---|---|---|---|',
  ...rows.map(
    (r) => `| ${r.promise} | ${r.tried} | ${r.failures} | ${r.notes.join('; ').replace(/\|/g, '\\|').replace(/\n/g, ' ').slice(0, 400)} |`,
  ),
  '',
  'TensorBoard event files are written, never read, by osp-lab, so there is no reader to attack; the writer is',
  'checked by an independent decoder in test/io/tfevents.test.ts.',
  '',
];
if (!only) writeFileSync('RELIABILITY.md', table.join('\n'));
const failed = rows.reduce((a, r) => a + r.failures, 0);
const tried = rows.reduce((a, r) => a + r.tried, 0);
console.log(`\n${tried - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
