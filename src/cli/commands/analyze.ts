/** `osp analyze`: outlier statistics and the Hessian spectrum of a checkpoint or HF Llama dir (analyzeCheckpoint). */
import { BACKEND_NAMES } from '../../backend/index.ts';
import { OspError } from '../../errors.ts';
import { analyzeCheckpoint } from '../../eval/analyze.ts';
import { MODEL_SOURCE_HELP } from '../../eval/source.ts';
import type { Command } from '../command.ts';

export const analyze: Command = {
  summary: 'outlier statistics and the Hessian spectrum of a checkpoint (or a Hugging Face Llama directory)',
  usage:
    'osp analyze CHECKPOINT --text FILE --batch B --seq T [--kurtosis] [--hessian --topk K --lanczos M ' +
    '[--trace-probes N] [--params GLOB] [--method auto|exact|fd]] [--backend NAME] [--json]',
  options: {
    text: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    kurtosis: { type: 'boolean' },
    hessian: { type: 'boolean' },
    topk: { type: 'string' },
    lanczos: { type: 'string' },
    'trace-probes': { type: 'string' },
    'outlier-window': { type: 'string' },
    params: { type: 'string' },
    method: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
  },
  help: {
    CHECKPOINT: MODEL_SOURCE_HELP,
    '--text FILE': "the batch is the first B*(T+1) tokens of FILE (the model's tokenizer) laid out as B rows",
    '--batch B': 'rows of the batch',
    '--seq T': "tokens per row (<= the model's maxSeqLen, an HF config.json's max_position_embeddings)",
    '--kurtosis': 'outlier statistics per tap and the aggregate OSP kurtosis (the default when --hessian is absent)',
    '--hessian': 'the Hessian spectrum of the loss on the batch',
    '--topk K': 'eigenvalues reported (default 5)',
    '--lanczos M': 'Lanczos steps (default 30; K <= M)',
    '--trace-probes N': 'Hutchinson probes for the trace (default 0: no trace)',
    '--outlier-window K': 'top Ritz values the outlier rule looks at, the most it can count (default min(M/2, max(2K, 10)))',
    '--params GLOB': "restrict the Hessian to matching parameters (default '*'), e.g. 'model.layers.0.*'",
    '--method NAME': 'Hessian-vector products: auto (default), exact (double backprop), fd (finite differences)',
    '--backend NAME': `backend to run on (default: the run's, auto for a Hugging Face directory; ${BACKEND_NAMES.join(', ')})`,
    '--json': 'print the result as JSON',
  },
  async run(v, pos) {
    if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp analyze --help)');
    if (!v.text) throw new OspError('--text FILE is required');
    const int = (name: string, fallback?: number) => {
      const raw = v[name] as string | undefined;
      if (raw === undefined) {
        if (fallback === undefined) throw new OspError(`--${name} is required`);
        return fallback;
      }
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) throw new OspError(`--${name} must be a positive integer, got '${raw}'`);
      return n;
    };
    const method = (v.method as string | undefined) ?? 'auto';
    if (!['auto', 'exact', 'fd'].includes(method)) {
      throw new OspError(`--method must be one of auto, exact, fd, got '${method}'`);
    }
    const r = await analyzeCheckpoint({
      checkpoint: pos[0]!,
      text: v.text as string,
      batch: int('batch'),
      seq: int('seq'),
      kurtosis: Boolean(v.kurtosis) || !v.hessian,
      hessian: v.hessian
        ? {
            topk: int('topk', 5),
            lanczos: int('lanczos', 30),
            traceProbes: v['trace-probes'] === undefined ? 0 : int('trace-probes'),
            outlierWindow: v['outlier-window'] === undefined ? undefined : int('outlier-window'),
            params: (v.params as string | undefined) ?? '*',
            method: method as 'auto' | 'exact' | 'fd',
          }
        : undefined,
      backend: v.backend as string | undefined,
    });
    if (v.json) {
      console.log(JSON.stringify(r));
      return;
    }
    console.log(`${r.checkpoint} (${r.step !== undefined ? `step ${r.step}` : 'Hugging Face'}), ${r.tokens} tokens`);
    if (r.kurtosis) {
      const k = r.kurtosis;
      const below = k.ospKurtosis < k.gaussianFloor ? '; below it: lighter-tailed than Gaussian noise' : '';
      console.log(
        `OSP excess kurtosis ${k.ospKurtosis.toFixed(3)} (Gaussian floor at this width ` +
          `${k.gaussianFloor.toFixed(4)} +- ${k.gaussianFloorStderr.toFixed(4)}${below})`,
      );
      console.log('tap                 osp_kurt  chan_kurt  max/median  max|x|');
      for (const [tap, s] of Object.entries(k.perTap)) {
        console.log(
          `${tap.padEnd(18)} ${s.ospKurtosis.toFixed(3).padStart(9)} ${s.channelKurtosis.toFixed(3).padStart(10)} ` +
            `${s.maxMedianRatio.toFixed(2).padStart(11)} ${(s.topK[0] ?? 0).toFixed(3).padStart(8)}`,
        );
      }
    }
    if (r.hessian) {
      const h = r.hessian;
      console.log(`Hessian over ${h.dim} parameters (${h.method} HVP, ${h.seconds.toFixed(1)} s)`);
      console.log(`top eigenvalues: ${h.topk.map((x) => x.toPrecision(5)).join(', ')}`);
      const count = h.outliersCapped
        ? `${h.outlierCount} or more (every value in the rule's window of ${h.outlierWindow} is one: raise --outlier-window)`
        : `${h.outlierCount} (of a window of ${h.outlierWindow})`;
      console.log(
        `outliers: ${count}; gap ratio ${h.gapRatio.toFixed(3)}, bulk edge ${h.bulkEdge.toPrecision(5)} ` +
          '(a lower bound from a short Lanczos run)',
      );
      if (h.trace) console.log(`trace: ${h.trace.value.toPrecision(5)} +- ${h.trace.stderr.toPrecision(3)}`);
    }
  },
};
