/**
 * `osp quant-eval`: full-precision vs quantized perplexity of a checkpoint or a Hugging Face Llama
 * directory (quantEvalCheckpoint), printed as one table (quantEvalRows) or as JSON.
 */
import { BACKEND_NAMES } from '../../backend/index.ts';
import { checkChoice, OspError } from '../../errors.ts';
import { quantEvalCheckpoint, quantEvalRows } from '../../eval/quant_eval.ts';
import { MODEL_SOURCE_HELP } from '../../eval/source.ts';
import { GGUF_TYPES } from '../../export/gguf.ts';
import { resolveQuantConfig } from '../../quant/eval.ts';
import type { Command } from '../command.ts';

export const quantEvalCommand: Command = {
  summary: 'full-precision vs 4-bit (W4A4KV4) perplexity of a checkpoint or HF Llama dir: RTN, GPTQ, FFN Had, QuaRot, llama.cpp',
  usage: 'osp quant-eval CHECKPOINT (--text FILE | --val) [--all | --method LIST --rotate LIST --gguf LIST] [--w 4 --a 4 --kv 4] [--json]',
  options: {
    text: { type: 'string' },
    val: { type: 'boolean' },
    windows: { type: 'string' },
    method: { type: 'string' },
    rotate: { type: 'string' },
    all: { type: 'boolean' },
    gguf: { type: 'string' },
    w: { type: 'string' },
    a: { type: 'string' },
    kv: { type: 'string' },
    had: { type: 'boolean' },
    'no-qk-rotate': { type: 'boolean' },
    'minmax-range': { type: 'boolean' },
    'group-size': { type: 'string' },
    'no-clip': { type: 'boolean' },
    'act-order': { type: 'boolean' },
    calib: { type: 'string' },
    'calib-windows': { type: 'string' },
    'quarot-seed': { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
  },
  help: {
    CHECKPOINT: MODEL_SOURCE_HELP,
    '--text FILE': 'UTF-8 text, windows of maxSeqLen as in osp eval',
    '--val': "instead of --text: the validation split of the checkpoint's run (its data config; not for a Hugging Face directory)",
    '--windows N': 'evaluate only the first N windows',
    '--method LIST': 'weight quantizer(s), comma-separated: rtn (default), gptq',
    '--rotate LIST': 'rotation(s): none (default), ffn (exact full-width FFN Hadamard), quarot, ffn-block (block-diagonal, osp-lab < 0.2)',
    '--all': "the OSP paper's table: --method rtn,gptq --rotate none,ffn,quarot --gguf q4_0",
    '--gguf LIST':
      "also export to GGUF (f32, f16, q8_0, q4_0) and report llama.cpp's own perplexity; with quarot, also the residual-rotated export",
    '--w BITS': 'weights: symmetric per output channel, 4, 8 or 16 (= off); default 4',
    '--a BITS': 'activations at the inputs of q/k/v/o/gate/up/down: per-token asymmetric; default 4',
    '--kv BITS': 'KV cache (V, and K after RoPE and the Q/K rotation): asymmetric per head vector; default 4',
    '--no-qk-rotate': 'quantize raw post-RoPE keys (no Q/K Hadamard; osp-lab < 0.2)',
    '--minmax-range': 'activation/KV ranges are plain min/max (default: widened to include 0, as QuaRot)',
    '--group-size G': 'weight quantization groups of G input channels (default: one scale per output channel)',
    '--no-clip': 'weight scales without the MSE clip search',
    '--act-order': 'GPTQ: quantize columns by decreasing Hessian diagonal',
    '--calib FILE': "GPTQ calibration text (default: the run's training data, 128 windows; required for a Hugging Face directory)",
    '--calib-windows N': 'GPTQ calibration windows of maxSeqLen tokens (default 128)',
    '--quarot-seed S': "seed of QuaRot's random Hadamard signs (default 0)",
    '--had': 'osp-lab < 0.2: the same as adding --rotate ffn-block',
    '--backend NAME': `backend to run on (default auto; ${BACKEND_NAMES.join(', ')})`,
    '--json': 'print {"checkpoint", "step", "text", "fp", "variants", "gguf", "config"} as JSON',
  },
  async run(v, pos) {
    if (pos.length !== 1) throw new OspError('expected one CHECKPOINT argument (see osp quant-eval --help)');
    if (!v.text === !v.val) throw new OspError("give the evaluation text: --text FILE, or --val for the run's validation split (not both)");
    const maxWindows = v.windows === undefined ? Infinity : Number(v.windows);
    if (!(Number.isSafeInteger(maxWindows) && maxWindows >= 1) && maxWindows !== Infinity) {
      throw new OspError(`--windows: expected a positive integer, got '${String(v.windows)}'`);
    }
    const list = (name: string, fallback: string) =>
      String(v[name] ?? fallback)
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
    const all = Boolean(v.all);
    if (all && (v.method !== undefined || v.rotate !== undefined || v.gguf !== undefined)) {
      throw new OspError('--all sets --method, --rotate and --gguf; give either --all or those options');
    }
    const bits = (name: string) => (v[name] === undefined ? 4 : Number(v[name]));
    const int = (name: string) => (v[name] === undefined ? undefined : Number(v[name]));
    const quant = resolveQuantConfig(
      {
        w: bits('w'),
        a: bits('a'),
        kv: bits('kv'),
        method: list('method', all ? 'rtn,gptq' : 'rtn'),
        rotate: list('rotate', all ? 'none,ffn,quarot' : 'none'),
        ...(v.had ? { had: true } : {}),
        qkRotate: !v['no-qk-rotate'],
        zeroInRange: !v['minmax-range'],
        clipSearch: !v['no-clip'],
        ...(v['group-size'] !== undefined ? { groupSize: int('group-size') } : {}),
        gptq: {
          actOrder: Boolean(v['act-order']),
          ...(v['calib-windows'] !== undefined ? { calibrationWindows: int('calib-windows') } : {}),
        },
        ...(v['quarot-seed'] !== undefined ? { quarotSeed: int('quarot-seed') } : {}),
      },
      'quant',
    ); // bad values fail here (named as the config section's fields), before anything is loaded
    const gguf = list('gguf', all ? 'q4_0' : '').map((t) => checkChoice('--gguf', t, GGUF_TYPES));
    const r = await quantEvalCheckpoint({
      checkpoint: pos[0]!,
      ...(v.val ? { val: true } : { text: v.text as string }),
      ...(maxWindows !== Infinity ? { windows: maxWindows } : {}),
      quant,
      gguf,
      calib: v.calib as string | undefined,
      backend: v.backend as string | undefined,
      log: (line) => {
        if (!v.json) process.stderr.write(`${line}\n`);
      },
    });
    if (v.json) {
      console.log(JSON.stringify(r));
      return;
    }
    console.log(`checkpoint ${r.checkpoint} (${r.step !== undefined ? `step ${r.step}` : 'Hugging Face'})`);
    console.log(`text       ${r.text}, ${r.tokens} tokens`);
    // The interval is the evaluation's sampling error (paired over windows), not seed-to-seed variation.
    const rows = quantEvalRows(r);
    const width = Math.max(...rows.map((x) => x.setting.length));
    console.log(`  ${'setting'.padEnd(width)}     loss      ppl  ppl ratio  95% (eval)`);
    for (const x of rows) {
      const half = x.ratioHalfWidth === null ? '' : `+- ${x.ratioHalfWidth.toFixed(4)}`;
      console.log(
        `  ${x.setting.padEnd(width)}  ${x.loss.toFixed(4)}  ${x.perplexity.toFixed(3).padStart(7)}  ${x.perplexityRatio.toFixed(4).padStart(9)}  ${half}`.trimEnd(),
      );
    }
    if (r.gguf.length) {
      console.log('  llama.cpp: its own Q4_0/Q8_0 (weights in blocks of 32, one scale each), its');
      console.log('  CPU kernels, f16 KV cache; residual-rotated = osp export --rotate');
    }
    console.log('  95% (eval): interval over the evaluation windows, not over training seeds');
  },
};
