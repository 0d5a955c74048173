/**
 * Interpreting one trial for the report: summarizeTrial (a TrialResult as read to its TrialReport
 * record: modules, optimizer routing, last evaluation, kurtosis, quantization results, Hessian).
 */
import { resolveModelConfig } from '../model/config.ts';
import { paramSpecs } from '../model/transformer.ts';
import { EMBEDDINGS } from '../model/embeddings.ts';
import { assignOptimizers, OPTIMIZER_NAMES, type RoutingRule } from '../optim/routing.ts';
import { configurationOf, parseTrialName } from './labels.ts';
import { isObject, type MetricsRow, type TrialResult } from './report_read.ts';

/**
 * Fake-quantized evaluation of one variant, under its tag as in metrics.jsonl (`w4a4kv4_rtn`,
 * `w4a4kv4_gptq_quarot`, ...; `w4a4kv4`, `w4a4kv4_had` in runs of osp-lab < 0.2).
 */
export interface QuantReport {
  step: number | null;
  fpLoss: number | null;
  fpPerplexity: number | null;
  loss: number | null;
  perplexity: number | null;
  /** Quantized / full-precision perplexity. */
  pplRatio: number | null;
}

/**
 * One trial in the report. Numbers are null when not measured; in memory a measured non-finite value
 * stays NaN (the table shows 'NaN'), which JSON writes as null too.
 */
export interface TrialReport {
  name: string;
  /** The name without its `seed=N` part: the trials of one configuration differ only in their seed. */
  configuration: string;
  /** The run's `seed` (weight init and, by default, the data order), from its resolved config. */
  seed: number | null;
  /** Short legend label that tells this trial from the others of its sweep ('adam, lr=3e-3'). */
  label: string;
  /** The variant part of a sweep trial name (`<variant>__key=value...`), else null. */
  variant: string | null;
  /** The grid point: each swept config path (from the name) -> its value in the trial's config. */
  grid: Record<string, unknown>;
  /** summary.json exists: the run reached its last step. */
  finished: boolean;
  /** Steps trained: the run's step count when finished, else the last logged step (null: nothing logged). */
  steps: number | null;
  /** `steps` of the resolved config: how far the trial is meant to go. */
  plannedSteps: number | null;
  modules: {
    norm: string;
    embedding: string;
    /** 'adamw' (every parameter), 'muon' (the default routing), 'muon (emb too)' (embedding and head on Muon), 'adamw+lion'. */
    optimizer: string;
    /** Parameters per optimizer (those that train any) under the trial's routing; null when it cannot be routed. */
    routing: Record<string, number> | null;
    hiddenSize: number | null;
    numLayers: number | null;
  };
  /** Last evaluation (summary.json, else the last `eval/*` row). */
  valLoss: number | null;
  valPerplexity: number | null;
  bitsPerByte: number | null;
  /** The OSP paper's aggregate excess kurtosis at the last measurement. */
  ospKurtosis: number | null;
  /** The estimator's value on Gaussian activations of this width. */
  gaussianFloor: number | null;
  /** Last OSP kurtosis of each block's output (`layers.{i}.out`), by layer index; [] when never measured. */
  layerKurtosis: (number | null)[];
  /** By quantization tag (quantTagName in quant/config.ts says what each means). */
  quant: Record<string, QuantReport>;
  /** Largest Hessian eigenvalue and the step whose weights it describes. */
  hessianEig1: number | null;
  hessianStep: number | null;
  /** The metrics named in `writeReport`'s `metrics` option, from the last row that has each. */
  extra: Record<string, number | null>;
  truncatedMetricsLine: boolean;
}

/** The value at a dotted path of nested objects, or undefined. */
function at(v: unknown, path: string): unknown {
  let cur = v;
  for (const k of path.split('.')) {
    if (!isObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** A number at a path (NaN kept: it was measured), else undefined. */
function numAt(v: unknown, path: string): number | undefined {
  const x = at(v, path);
  return typeof x === 'number' ? x : undefined;
}

/** The value of `key` in the last row that has it. */
function lastValue(rows: readonly MetricsRow[], key: string): number | undefined {
  for (let i = rows.length - 1; i >= 0; i--) if (key in rows[i]!) return rows[i]![key];
  return undefined;
}

function lastRowWith(rows: readonly MetricsRow[], key: string): MetricsRow | undefined {
  for (let i = rows.length - 1; i >= 0; i--) if (key in rows[i]!) return rows[i];
  return undefined;
}

/** First defined of the candidates, else null. */
function pick(...candidates: (number | undefined)[]): number | null {
  for (const c of candidates) if (c !== undefined) return c;
  return null;
}

/**
 * Which optimizer trains what, as the OSP ablation names it. Computed with the trainer's own routing
 * (assignOptimizers over the parameters the model config implies), so the label cannot disagree with
 * what the run did. With Muon: 'muon (emb too)' when the token embedding (and the head, when untied) go
 * to Muon ('muon (embed too)' / 'muon (head too)' for only one of them), 'muon' otherwise. Without:
 * the optimizers that train anything, in registry order ('adamw', 'adamw+lion'). '?' when the config
 * cannot be routed (it could not have trained either).
 */
function optimizerSummary(resolved: Record<string, unknown>): {
  label: string;
  counts: Record<string, number> | null;
} {
  try {
    const model = resolveModelConfig(resolved.model ?? {});
    const shapes = new Map(paramSpecs(model).map((s) => [s.name, s.shape] as const));
    const raw = at(resolved, 'optimizer.routing') ?? [];
    const valid =
      Array.isArray(raw) &&
      raw.every((r) => isObject(r) && typeof r.match === 'string' && (OPTIMIZER_NAMES as readonly unknown[]).includes(r.optimizer));
    if (!valid) return { label: '?', counts: null };
    const assignment = assignOptimizers(raw as RoutingRule[], shapes, EMBEDDINGS[model.embedding].defaultRouting);
    const counts: Record<string, number> = {};
    for (const name of OPTIMIZER_NAMES) {
      const n = [...assignment.values()].filter((o) => o === name).length;
      if (n > 0) counts[name] = n;
    }
    if (counts.muon === undefined) return { label: Object.keys(counts).join('+'), counts };
    const emb = assignment.get('model.embed_tokens.weight') === 'muon';
    const hasHead = shapes.has('lm_head.weight');
    const head = hasHead && assignment.get('lm_head.weight') === 'muon';
    if (emb && (head || !hasHead)) return { label: 'muon (emb too)', counts };
    if (emb) return { label: 'muon (embed too)', counts };
    if (head) return { label: 'muon (head too)', counts };
    return { label: 'muon', counts };
  } catch {
    return { label: '?', counts: null };
  }
}

/** The tag osp-lab < 0.2 wrote for its quantization config: w4a4kv4, w4a4kv4_had, ... */
function legacyQuantTag(config: unknown): string | undefined {
  const w = numAt(config, 'w');
  const a = numAt(config, 'a');
  const kv = numAt(config, 'kv');
  if (w === undefined || a === undefined || kv === undefined) return undefined;
  return `w${w}a${a}kv${kv}${at(config, 'had') === true ? '_had' : ''}`;
}

/**
 * The measurements summary.json's `monitors.quant` holds, by tag: every entry of `variants` (one per
 * weight quantizer x rotation, with the shared `fp`), or, in run directories of osp-lab < 0.2, the
 * single `quant`/`gap` of the tag its `config` implies.
 */
function summaryQuant(q: unknown): Map<string, QuantReport> {
  const out = new Map<string, QuantReport>();
  if (!isObject(q)) return out;
  const step = pick(numAt(q, 'step'));
  const fpLoss = pick(numAt(q, 'fp.loss'));
  const fpPerplexity = pick(numAt(q, 'fp.perplexity'));
  const entry = (v: unknown): QuantReport => ({
    step,
    fpLoss,
    fpPerplexity,
    loss: pick(numAt(v, 'quant.loss')),
    perplexity: pick(numAt(v, 'quant.perplexity')),
    pplRatio: pick(numAt(v, 'gap.perplexityRatio')),
  });
  if (Array.isArray(q.variants)) {
    for (const v of q.variants) {
      const tag = at(v, 'tag');
      if (typeof tag === 'string' && tag !== '') out.set(tag, entry(v));
    }
    return out;
  }
  const tag = legacyQuantTag(at(q, 'config'));
  if (tag !== undefined) out.set(tag, entry(q));
  return out;
}

function quantResults(t: TrialResult): Record<string, QuantReport> {
  const out: Record<string, QuantReport> = {};
  const tags = new Set<string>();
  for (const row of t.metrics) {
    for (const k of Object.keys(row)) {
      if (!k.startsWith('quant/')) continue;
      const m = /^quant\/(.+)\/perplexity$/.exec(k);
      if (m) tags.add(m[1]!);
    }
  }
  for (const tag of tags) {
    const row = lastRowWith(t.metrics, `quant/${tag}/perplexity`)!;
    const fpLoss = row['quant/fp_loss'];
    const perplexity = row[`quant/${tag}/perplexity`]!;
    const fpPerplexity = fpLoss === undefined ? undefined : Math.exp(fpLoss);
    out[tag] = {
      step: row.step,
      fpLoss: pick(fpLoss),
      fpPerplexity: pick(fpPerplexity),
      loss: pick(row[`quant/${tag}/loss`]),
      perplexity,
      pplRatio: pick(row[`quant/${tag}/ppl_ratio`], fpPerplexity === undefined ? undefined : perplexity / fpPerplexity),
    };
  }
  // summary.json holds the final measurement with its exact config: it wins for its own tags, and the
  // metrics rows fill in what it lacks.
  for (const [tag, s] of summaryQuant(at(t.summary, 'monitors.quant'))) {
    const prev = out[tag];
    out[tag] = {
      step: pick(s.step ?? undefined, prev?.step ?? undefined),
      fpLoss: pick(s.fpLoss ?? undefined, prev?.fpLoss ?? undefined),
      fpPerplexity: pick(s.fpPerplexity ?? undefined, prev?.fpPerplexity ?? undefined),
      loss: pick(s.loss ?? undefined, prev?.loss ?? undefined),
      perplexity: pick(s.perplexity ?? undefined, prev?.perplexity ?? undefined),
      pplRatio: pick(s.pplRatio ?? undefined, prev?.pplRatio ?? undefined),
    };
  }
  return out;
}

/**
 * Derives one trial's report record. Finished trials take their final numbers from summary.json and
 * fall back to the last metrics.jsonl row that has them; unfinished trials report the latest logged
 * values.
 * @example const r = summarizeTrial(collectTrials('runs/ablation')[0]!); r.quant.w4a4kv4_rtn?.pplRatio
 */
export function summarizeTrial(t: TrialResult, extraMetrics: readonly string[] = []): TrialReport {
  const r = t.config.resolved;
  const s = t.summary;
  const rows = t.metrics;
  const hiddenSize = pick(numAt(r, 'model.hiddenSize'));
  const configuredLayers = numAt(r, 'model.numLayers');
  const opt = optimizerSummary(r);

  // Per-layer kurtosis: every layer the config has, plus any a metric names (configs from other versions).
  const perTap = at(s, 'monitors.outliers.perTap');
  let numLayers = configuredLayers ?? 0;
  const keys = new Set(rows.flatMap((row) => Object.keys(row)));
  for (const k of [...keys, ...(isObject(perTap) ? Object.keys(perTap) : [])]) {
    const m = /layers\.(\d+)\.out/.exec(k);
    if (m) numLayers = Math.max(numLayers, Number(m[1]) + 1);
  }
  const layerKurtosis = Array.from({ length: numLayers }, (_, i) =>
    pick(numAt(perTap, `layers.${i}.out.ospKurtosis`), lastValue(rows, `outliers/layers.${i}.out/osp_kurtosis`)),
  );

  const lastStep = rows.at(-1)?.step;
  const topk = at(s, 'monitors.hessian.topk');
  const parsed = parseTrialName(t.name);
  const grid: Record<string, unknown> = {};
  for (const [key, raw] of parsed?.params ?? []) {
    // The exact value from the config (the name has it with unsafe characters replaced).
    const given = at(t.config.input, key) ?? at(r, key);
    grid[key] = given !== undefined ? given : raw;
  }
  const seed = numAt(r, 'seed');
  return {
    name: t.name,
    configuration: configurationOf(t.name).configuration,
    seed: seed !== undefined && Number.isInteger(seed) ? seed : null,
    label: t.name,
    variant: parsed?.variant ?? null,
    grid,
    finished: s !== null,
    steps: pick(s !== null ? numAt(s, 'steps') : undefined, lastStep),
    plannedSteps: pick(numAt(r, 'steps')),
    modules: {
      norm: String(at(r, 'model.norm') ?? '?'),
      embedding: String(at(r, 'model.embedding') ?? '?'),
      optimizer: opt.label,
      routing: opt.counts,
      hiddenSize,
      numLayers: pick(configuredLayers),
    },
    valLoss: pick(numAt(s, 'eval.loss'), lastValue(rows, 'eval/loss')),
    valPerplexity: pick(numAt(s, 'eval.perplexity'), lastValue(rows, 'eval/perplexity')),
    bitsPerByte: pick(numAt(s, 'eval.bitsPerByte'), lastValue(rows, 'eval/bits_per_byte')),
    ospKurtosis: pick(numAt(s, 'monitors.outliers.ospKurtosis'), lastValue(rows, 'outliers/osp_kurtosis')),
    gaussianFloor: pick(numAt(s, 'monitors.outliers.gaussianFloor'), lastValue(rows, 'outliers/gaussian_floor')),
    layerKurtosis: layerKurtosis.every((v) => v === null) ? [] : layerKurtosis,
    quant: quantResults(t),
    hessianEig1: pick(Array.isArray(topk) && typeof topk[0] === 'number' ? topk[0] : undefined, lastValue(rows, 'hessian/eig_1')),
    hessianStep: pick(numAt(s, 'monitors.hessian.step'), lastValue(rows, 'hessian/measured_at_step')),
    extra: Object.fromEntries(extraMetrics.map((m) => [m, pick(lastValue(rows, m))])),
    truncatedMetricsLine: t.truncatedMetricsLine,
  };
}
