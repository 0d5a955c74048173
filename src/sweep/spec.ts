/**
 * The sweep spec: one JSON file that names a base run config and the changes to try on it (a grid
 * of values and/or named variants), expanded into fully specified trials. Everything that can be
 * wrong with a sweep is checked here, before the first trial starts: an error in trial 37 of 40
 * after hours of training is the failure this module exists to prevent.
 */
import { TrendSpecSchema } from './trend.ts';
import { readFileOr } from '../io/read.ts';
import { basename, dirname, isAbsolute, resolve, sep } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { parseConfig } from '../utils/parse_config.ts';
import { applyOverrides, readConfigFile, resolveRunConfig } from '../train/config.ts';

/** More trials than this is almost certainly a typo in the grid (one list too many, or too long). */
export const MAX_TRIALS = 1000;

/**
 * Longest trial name, as for run names: it becomes a directory name and, with `.json`, a file name,
 * and file systems cap names at 255 bytes.
 */
const MAX_NAME_LENGTH = 128;

/** Characters of a trial name; anything else in a grid value becomes '_'. '=' keeps `key=value` readable. */
const UNSAFE_NAME_CHARS = /[^A-Za-z0-9._=-]/g;
const SAFE_NAME = /^[A-Za-z0-9._=-]+$/;

/** A dotted config path: identifiers joined by '.', so it cannot smuggle '=' or '__proto__' into applyOverrides. */
const CONFIG_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Top-level fields the sweep itself sets on every trial; a grid or variant must not fight over them. */
const RESERVED_PATHS = ['name', 'out'];

/** Trial directory names that would collide with what the sweep keeps in its directory. */
const RESERVED_NAMES = ['trials'];

export const SweepSpecSchema = z.strictObject({
  /** Sweep name (its directory is `<out>/<name>`); letters, digits, '.', '_', '-'. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-" only, not starting with "." or "-"')
    .max(MAX_NAME_LENGTH)
    .default('sweep'),
  /** The run config every trial starts from: an inline object, or a JSON file (relative to the spec's directory). */
  base: z.union([z.record(z.string(), z.unknown()), z.string().min(1)]),
  /** Dotted config path -> values to try; the trials are the cartesian product, in key order. */
  grid: z.record(z.string(), z.array(z.unknown())).optional(),
  /** Named alternatives, each a set of dotted path -> value changes; crossed with the grid when both are given. */
  variants: z
    .array(
      z.strictObject({
        name: z.string(),
        set: z.record(z.string(), z.unknown()).default({}),
      }),
    )
    .optional(),
  /** Extra metric names (as in metrics.jsonl, e.g. `outliers/osp_kurtosis`) for the sweep report. */
  metrics: z.array(z.string().min(1)).default([]),
  /** Trials run at once; the runner picks a default from the machine when absent. */
  parallel: z.number().int().min(1).optional(),
  /**
   * Seeds to run every trial with (variant x grid point), each as the run config's `seed` (weight
   * init and, unless `data.seed` is set, the data order); the report aggregates over them.
   */
  seeds: z.array(z.number().int().min(0).max(0xffffffff)).min(1).optional(),
  /**
   * Pairs of configurations [A, B] (trial names without the seed part) whose outlier and quantization
   * trends the report judges against the OSP paper's claims (trend.md; src/sweep/trend.ts).
   */
  trend: TrendSpecSchema.optional(),
});

export type SweepSpecInput = z.input<typeof SweepSpecSchema>;
export type SweepSpec = z.output<typeof SweepSpecSchema>;

/** One trial of a sweep: a complete raw run config (validated, but not resolved: defaults stay implicit). */
export interface Trial {
  /** Directory name of the trial inside the sweep directory; also the config's `name`. */
  name: string;
  /** Base + variant changes + grid point, with `name` set; `out` is left to the runner. */
  config: Record<string, unknown>;
  /** The variant this trial comes from, if the sweep has variants. */
  variant?: string;
  /** The grid point: dotted path -> value ({} without a grid), and `seed` when the spec has `seeds`. */
  point: Record<string, unknown>;
  /** The seed of this trial when the spec has `seeds`. */
  seed?: number;
}

/**
 * Reads and validates a sweep spec file; every error names the file and the field.
 * @example const spec = loadSweepSpec('sweeps/lr.json'); const trials = expandTrials(spec, dirname('sweeps/lr.json'));
 */
export function loadSweepSpec(path: string): SweepSpec {
  const text = readFileOr(path, (msg) => new ConfigError('sweep', `${path}: ${msg}`)).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError('sweep', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  try {
    return parseConfig(SweepSpecSchema, raw, 'sweep');
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.field, `${stripField(e)} (in ${path})`);
    throw e;
  }
}

/**
 * Expands a sweep into its trials and validates every one of them as a run config, so a sweep either
 * fails at once or has only runnable trials. Order: variants outermost, then grid keys in the spec's
 * order (the first key varies slowest), then the seeds (fastest: the seeds of one configuration are
 * neighbours). Names: `<variant>__<key>=<value>__...__seed=<N>`, e.g. `osp__optimizer.muon.lr=0.01`,
 * or `osp__optimizer.muon.lr=0.01__seed=2` with `seeds`; a sweep of seeds alone names its trials
 * `seed=0`, `seed=1`, ...
 *
 * @param specDir directory of the spec file: a relative `base` path is resolved against it
 * @example expandTrials({ name: 's', base: {}, grid: { 'optimizer.muon.lr': [0.01, 0.02] }, metrics: [] }, '.')
 *   // -> trials 'optimizer.muon.lr=0.01' and 'optimizer.muon.lr=0.02'
 */
export function expandTrials(spec: SweepSpec, specDir: string): Trial[] {
  const gridKeys = Object.keys(spec.grid ?? {});
  const variants = spec.variants ?? [];
  const seeds = spec.seeds;
  if (gridKeys.length === 0 && variants.length === 0 && seeds === undefined) {
    throw new ConfigError(
      'sweep',
      'nothing to sweep: give a "grid" (e.g. {"optimizer.muon.lr": [0.01, 0.02]}), "variants" (e.g. [{"name": "adam", "set": {"model.norm": "rmsnorm"}}]) or "seeds" (e.g. [0, 1, 2])',
    );
  }
  if (seeds !== undefined) {
    const seen = new Set<number>();
    seeds.forEach((s, i) => {
      if (seen.has(s)) throw new ConfigError(`sweep.seeds.${i}`, `seed ${s} is listed twice; the seeds must be distinct`);
      seen.add(s);
    });
    // With `seeds` the sweep owns the run's seed: another value for it would be overwritten silently.
    if (gridKeys.includes('seed')) {
      throw new ConfigError(
        'sweep.grid.seed',
        '"seed" is set by "seeds"; remove the grid key or the "seeds" list (for the data order alone, sweep data.seed)',
      );
    }
    variants.forEach((v, i) => {
      if (Object.hasOwn(v.set, 'seed')) {
        throw new ConfigError(`sweep.variants.${i}.set.seed`, `"seed" is set by "seeds"; remove it from variant '${v.name}'`);
      }
    });
  }
  for (const key of gridKeys) {
    checkConfigPath(`sweep.grid.${key}`, key);
    if (spec.grid![key]!.length === 0) {
      throw new ConfigError(`sweep.grid.${key}`, 'has no values; list at least one, or remove the key');
    }
  }
  variants.forEach((v, i) => {
    checkTrialName(`sweep.variants.${i}.name`, v.name, 'variant name');
    for (const key of Object.keys(v.set)) checkConfigPath(`sweep.variants.${i}.set.${key}`, key);
  });

  // Count before expanding: a runaway grid must not allocate millions of configs first.
  const sizes = gridKeys.map((k) => spec.grid![k]!.length);
  const count = Math.max(variants.length, 1) * sizes.reduce((a, b) => a * b, 1) * (seeds?.length ?? 1);
  if (count > MAX_TRIALS) {
    const factors = [
      ...(variants.length > 0 ? [`${variants.length} variants`] : []),
      ...gridKeys.map((k, i) => `${sizes[i]} ${k}`),
      ...(seeds !== undefined ? [`${seeds.length} seeds`] : []),
    ];
    throw new ConfigError(
      'sweep.grid',
      `${count} trials (${factors.join(' x ')}) is more than the limit of ${MAX_TRIALS}, likely a mistake; split the sweep or shorten the value lists${seeds !== undefined ? ' or the seeds' : ''}`,
    );
  }

  const base = loadBase(spec.base, specDir);
  const points = gridPoints(spec.grid ?? {}, gridKeys);
  // Each grid point once per seed, the seeds innermost.
  const runs = points.flatMap((gridPoint) => (seeds ?? [undefined]).map((seed) => ({ gridPoint, seed })));
  const trials: Trial[] = [];
  const sources = new Map<string, string>();
  for (const [vi, variant] of (variants.length > 0 ? variants : [undefined]).entries()) {
    for (const { gridPoint, seed } of runs) {
      const point = seed === undefined ? gridPoint : { ...gridPoint, seed };
      const parts = [
        ...(variant ? [variant.name] : []),
        ...gridKeys.map((k) => `${k}=${valueLabel(point[k])}`.replace(UNSAFE_NAME_CHARS, '_')),
        ...(seed !== undefined ? [`seed=${seed}`] : []),
      ];
      const name = parts.join('__');
      const source = describeSource(variant && `variant '${variant.name}' (sweep.variants.${vi})`, gridPoint, seed);
      checkTrialName('sweep', name, `trial name (${source})`);
      const previous = sources.get(name);
      if (previous !== undefined) {
        throw new ConfigError(
          'sweep',
          `two trials would both be named '${name}': ${previous} and ${source}; ` +
            'rename a variant, or use grid values that differ in letters, digits, ".", "_", "=" or "-"',
        );
      }
      sources.set(name, source);

      // A fresh copy per trial: trials must not share nested objects with each other or the base.
      let config = structuredClone(base);
      const sets: { path: string; value: unknown; from: string }[] = [
        ...Object.entries(variant?.set ?? {}).map(([path, value]) => ({ path, value, from: `variant '${variant!.name}'` })),
        ...gridKeys.map((path) => ({ path, value: point[path], from: 'grid' })),
        ...(seed !== undefined ? [{ path: 'seed', value: seed, from: 'seeds' }] : []),
      ];
      for (const s of sets) config = setPath(config, s.path, s.value, name, s.from);
      const { name: _ignored, ...rest } = config;
      config = { name, ...rest };
      validateTrial(config, name, sets);
      trials.push({ name, config, ...(variant ? { variant: variant.name } : {}), point, ...(seed !== undefined ? { seed } : {}) });
    }
  }
  return trials;
}

/** ConfigError's message without its `field: ` prefix, to re-wrap it with more context. */
function stripField(e: ConfigError): string {
  const prefix = `${e.field}: `;
  return e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
}

function checkConfigPath(field: string, path: string): void {
  // Prototype keys are identifiers too, but setting them would change objects, not the config.
  if (!CONFIG_PATH.test(path) || path.split('.').some((k) => k === '__proto__' || k === 'constructor' || k === 'prototype')) {
    throw new ConfigError(field, `'${path}' is not a dotted config path (e.g. optimizer.muon.lr)`);
  }
  if (RESERVED_PATHS.includes(path)) {
    throw new ConfigError(field, `'${path}' is set by the sweep itself (the trial name, and the sweep directory as out); remove it`);
  }
}

/**
 * A trial or variant name becomes a directory inside the sweep directory, so it must be one plain
 * path component: not empty, not '.'/'..', no separators, not hidden (the sweep keeps `.lock` there),
 * not a name the sweep uses itself.
 */
function checkTrialName(field: string, name: string, what: string): void {
  const bad = (why: string) => new ConfigError(field, `${what} ${JSON.stringify(name)} ${why}`);
  if (name === '') throw bad('is empty');
  if (name === '.' || name === '..') throw bad('would escape the sweep directory; use letters, digits, ".", "_", "=", "-"');
  if (name.includes('/') || name.includes('\\')) throw bad('contains a path separator; trial names are directory names');
  if (name.startsWith('.')) throw bad('starts with "." (hidden; the sweep directory keeps its lock file there)');
  if (!SAFE_NAME.test(name)) throw bad('may only contain letters, digits, ".", "_", "=" and "-"');
  if (name.length > MAX_NAME_LENGTH) {
    throw bad(`is longer than ${MAX_NAME_LENGTH} characters; give the variants shorter names or sweep fewer keys at once`);
  }
  if (RESERVED_NAMES.includes(name)) throw bad('is used by the sweep itself (trial configs live in trials/)');
  // Belt and braces: whatever the checks above missed, the directory must be a direct child.
  const root = resolve(sep, 'sweep-dir');
  const dir = resolve(root, name);
  if (dirname(dir) !== root || basename(dir) !== name) throw bad('would escape the sweep directory');
}

/** How a grid value reads in a trial name: strings bare, everything else as JSON. */
function valueLabel(value: unknown): string {
  return typeof value === 'string' ? value : String(JSON.stringify(value));
}

/** Where a trial comes from, for error messages: `variant 'osp' (sweep.variants.0) with grid point {...} with seed 1`. */
function describeSource(variantLabel: string | undefined, point: Record<string, unknown>, seed?: number): string {
  const parts = [
    ...(variantLabel !== undefined ? [variantLabel] : []),
    ...(Object.keys(point).length > 0 ? [`grid point ${JSON.stringify(point)}`] : []),
    ...(seed !== undefined ? [`seed ${seed}`] : []),
  ];
  return parts.join(' with ');
}

function loadBase(base: SweepSpec['base'], specDir: string): Record<string, unknown> {
  if (typeof base !== 'string') return base;
  const path = isAbsolute(base) ? base : resolve(specDir, base);
  let raw: unknown;
  try {
    raw = readConfigFile(path);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError('sweep.base', stripField(e));
    throw e;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('sweep.base', `${path} must hold a JSON object (a run config)`);
  }
  return raw as Record<string, unknown>;
}

/** Cartesian product of the grid's value lists, first key varying slowest (like nested loops). */
function gridPoints(grid: Record<string, unknown[]>, keys: string[]): Record<string, unknown>[] {
  let points: Record<string, unknown>[] = [{}];
  for (const key of keys) {
    points = points.flatMap((p) => grid[key]!.map((v) => ({ ...p, [key]: v })));
  }
  return points;
}

/**
 * Sets one dotted path with `--set` semantics (nested objects created, a non-object on the way is an
 * error) by handing applyOverrides the value as JSON: the spec's values are already JSON values, and
 * JSON text parses back to exactly them.
 */
function setPath(config: Record<string, unknown>, path: string, value: unknown, trial: string, from: string): Record<string, unknown> {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new ConfigError(path, `in trial '${trial}' (from ${from}): ${String(value)} is not a JSON value`);
  }
  try {
    return applyOverrides(config, [`${path}=${json}`]);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(path, `in trial '${trial}' (from ${from}): ${stripField(e)}`);
    throw e;
  }
}

/**
 * Validates a trial's whole config (its real name included) as a run config and says where a bad
 * field came from.
 */
function validateTrial(config: Record<string, unknown>, trial: string, sets: { path: string; from: string }[]): void {
  try {
    resolveRunConfig(config);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const f = e.field;
    // The last change touching the field is the one that made it what it is.
    const s = [...sets].reverse().find((s) => s.path === f || f.startsWith(`${s.path}.`) || s.path.startsWith(`${f}.`));
    const from = s
      ? `set by ${s.from === 'grid' ? `grid key '${s.path}'` : s.from === 'seeds' ? 'sweep.seeds' : `${s.from} at '${s.path}'`}`
      : 'from the base config';
    throw new ConfigError(f, `in trial '${trial}' (${from}): ${stripField(e)}`);
  }
}
