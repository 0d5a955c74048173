/**
 * The outlier monitor: every `monitor.every` steps (and after the first step and at the end) it runs
 * the model on a fixed held-out batch with hidden-state taps and records, per tap, OSP's excess
 * kurtosis, the per-channel kurtosis, the max/median ratio and the largest |activation|; the paper's
 * aggregate kurtosis over the hidden states with the Gaussian floor of the estimator at this width;
 * and, as TensorBoard histograms and a layer x channel heatmap, the per-channel RMS of each layer.
 */
import * as tf from '@tensorflow/tfjs';
import type { Callback, TrainContext } from '../callback.ts';
import { heatmapFigurePng } from '../../io/png.ts';
import { aggregateOspKurtosis, outlierStats, type OutlierStats } from '../../metrics/outliers.ts';
import { gaussianFloorEstimate } from '../../metrics/gaussian_floor.ts';
import { z } from 'zod';
import { zInt as int } from '../../utils/parse_config.ts';

export const MonitorConfigSchema = z
  .strictObject({
    every: int(0).default(50).describe('Measure every N steps, at step 0 and at the end; 0 = off.'),
    batchSize: int(1).default(4).describe('Sequences in the fixed held-out batch (the first validation windows).'),
    topK: int(1).default(8).describe('Largest |activations| reported per tap.'),
    images: z.boolean().default(true).describe('Per-channel RMS histograms and the layer x channel heatmap image in TensorBoard.'),
  })
  .prefault({})
  .describe('Outlier statistics of the hidden states on a fixed held-out batch (docs/monitoring.md).');
export type MonitorConfig = z.output<typeof MonitorConfigSchema>;

export interface OutlierSummary {
  step: number;
  ospKurtosis: number;
  gaussianFloor: number;
  perTap: Record<string, { ospKurtosis: number; channelKurtosis: number; maxMedianRatio: number; maxAbs: number }>;
}

/** Taps in model order: embed, then per layer attn_in, ffn_in, out, then final_norm. */
function tapOrder(numLayers: number): string[] {
  const names = ['embed'];
  for (let i = 0; i < numLayers; i++) names.push(`layers.${i}.attn_in`, `layers.${i}.ffn_in`, `layers.${i}.out`);
  names.push('final_norm');
  return names;
}

/**
 * Measures every tap of `model` on one batch; disposes everything it creates.
 * @param inputs int32 [B*T] row-major token ids
 */
export async function measureOutliers(
  ctx: Pick<TrainContext, 'model'>,
  inputs: Int32Array,
  B: number,
  T: number,
  topK: number,
): Promise<Map<string, OutlierStats>> {
  const { taps, logits } = tf.tidy(() => ctx.model.forward(tf.tensor2d(inputs, [B, T], 'int32'), { taps: true }));
  logits.dispose();
  const stats = new Map<string, OutlierStats>();
  try {
    for (const name of tapOrder(ctx.model.config.numLayers)) stats.set(name, await outlierStats(taps![name]!, { topK }));
  } finally {
    tf.dispose(Object.values(taps!));
  }
  return stats;
}

export class OutlierMonitor implements Callback {
  readonly name = 'outliers';
  last?: OutlierSummary;

  /** @param batch the fixed held-out batch (int32 [B*T]) */
  constructor(
    private readonly batch: Int32Array,
    private readonly B: number,
    private readonly T: number,
  ) {}

  async onStepEnd(ctx: TrainContext): Promise<void> {
    const { every, topK, images } = ctx.config.monitor;
    if (every === 0 || !(ctx.step === 1 || ctx.step % every === 0 || ctx.isLastStep)) return;
    const stats = await measureOutliers(ctx, this.batch, this.B, this.T, topK);
    const m = ctx.metrics;
    const aggregate = aggregateOspKurtosis(stats);
    const { value: floor, stderr: floorStderr } = gaussianFloorEstimate(ctx.model.config.hiddenSize);
    m.record('outliers/osp_kurtosis', aggregate);
    m.record('outliers/gaussian_floor', floor);
    m.record('outliers/gaussian_floor_stderr', floorStderr);
    // The worst layer's outlier statistics: what breaks per-token 4-bit quantization is one layer's
    // outlier channels or massive activations, which an average over layers dilutes.
    let worstMaxMedian = 0;
    let worstMaxAbs = 0;
    let worstChannel = 0;
    for (const s of stats.values()) {
      worstMaxMedian = Math.max(worstMaxMedian, s.maxMedianRatio);
      worstMaxAbs = Math.max(worstMaxAbs, s.topK[0] ?? 0);
      worstChannel = Math.max(worstChannel, s.channelKurtosis);
    }
    m.record('outliers/max_median', worstMaxMedian);
    m.record('outliers/max_abs', worstMaxAbs);
    m.record('outliers/channel_kurtosis', worstChannel);
    const perTap: OutlierSummary['perTap'] = {};
    for (const [tap, s] of stats) {
      m.record(`outliers/${tap}/osp_kurtosis`, s.ospKurtosis);
      m.record(`outliers/${tap}/channel_kurtosis`, s.channelKurtosis);
      m.record(`outliers/${tap}/max_median`, s.maxMedianRatio);
      m.record(`outliers/${tap}/max_abs`, s.topK[0] ?? 0);
      perTap[tap] = {
        ospKurtosis: s.ospKurtosis,
        channelKurtosis: s.channelKurtosis,
        maxMedianRatio: s.maxMedianRatio,
        maxAbs: s.topK[0] ?? 0,
      };
    }
    if (images) {
      // The residual stream (what the paper's kurtosis averages over): histograms and the heatmap.
      const stream = [...stats].filter(([tap]) => tap === 'embed' || tap.endsWith('.out') || tap === 'final_norm');
      for (const [tap, s] of stream) m.recordHistogram(`outliers/${tap}/channel_rms`, s.channelRms);
      // A figure, not bare cells: row labels (embedding, block outputs, final norm), channel ticks and a
      // colour bar with its range, so the image reads on its own.
      const rowLabels = stream.map(([tap]) => (tap === 'final_norm' ? 'final' : (/^layers\.(\d+)\.out$/.exec(tap)?.[1] ?? tap)));
      const heatmap = heatmapFigurePng(
        stream.map(([, s]) => s.channelRms),
        { title: `channel rms, step ${ctx.step}`, rowLabels, xLabel: 'channel', yLabel: 'layer', colorLabel: 'rms (log)' },
      );
      m.recordImage('outliers/channel_rms_heatmap', heatmap);
    }
    this.last = { step: ctx.step, ospKurtosis: aggregate, gaussianFloor: floor, perTap };
  }

  summary(): unknown {
    return this.last ?? null;
  }
}
