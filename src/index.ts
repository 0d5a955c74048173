/**
 * osp-lab: small-scale LLM pre-training experiments about activation outliers.
 *
 * @example
 *   import { startBackend, createModel, createOptimizer, trainStep } from 'osp-lab';
 *   await startBackend('auto');
 *   const model = createModel({ norm: 'ssnorm', embedding: 'embproj' }, { seed: 0 });
 *   const opt = createOptimizer({ muon: { lr: 5e-4 } }, model.params);
 *   const loss = await trainStep(model, opt, inputs, targets);
 */
export * from './errors.ts';
export { parseConfig } from './utils/parse_config.ts';
export {
  startBackend,
  stopBackend,
  currentBackend,
  BACKEND_NAMES,
  type BackendName,
  type BackendInfo,
  type ConcreteBackend,
} from './backend/index.ts';
export { createModel, paramSpecs, Transformer, type ForwardOptions, type ForwardResult } from './model/transformer.ts';
export type { BlockHooks } from './model/layers.ts';
export { ModelConfigSchema, resolveModelConfig, type ModelConfig, type ModelConfigInput } from './model/config.ts';
export { NORMS, type NormName } from './model/norms.ts';
export { EMBEDDINGS, type EmbeddingName } from './model/embeddings.ts';
export * from './optim/index.ts';
export { rmsNorm, rmsNormReference, rmsNormBackwardReference } from './ops/rms_norm.ts';
export { crossEntropy, crossEntropyReference, crossEntropyRowsReference, crossEntropyBackwardReference } from './ops/cross_entropy.ts';
export { adamwUpdate, adamwUpdateReference, type AdamWUpdateAttrs } from './ops/adamw_update.ts';
export { channelMoments, channelMomentsReference } from './ops/channel_moments.ts';
export { newtonSchulz, newtonSchulzReference, newtonSchulzFlops } from './ops/newton_schulz.ts';
export { KERNELS, hasKernel, withReferenceOps, setKernelsEnabled } from './ops/dispatch.ts';
export { registerSoftmaxGradient, softmaxGradReference } from './ops/softmax_grad.ts';
export { causalAttention, causalAttentionReference, causalMask, ATTENTION_MAX_HEAD_DIM } from './ops/attention.ts';
export { rope, ropeReference } from './ops/rope.ts';
export { swigluGate, swigluReference, swigluBackwardReference } from './ops/swiglu.ts';
export { trainStep } from './train/step.ts';
export { Rng } from './utils/rng.ts';
export { evaluateCheckpoint, type EvaluateCheckpointOptions, type EvaluateCheckpointResult } from './eval/evaluate_run.ts';
export {
  quantEvalCheckpoint,
  quantEvalRows,
  type QuantEvalCheckpointOptions,
  type QuantEvalCheckpointResult,
  type QuantEvalRow,
  type GgufEvalResult,
} from './eval/quant_eval.ts';
export { openModelSource, sourceTokenizer, MODEL_SOURCE_HELP, type ModelSource } from './export/checkpoint.ts';
export { loadTokenizer, TOKENIZER_NAMES, type Tokenizer } from './data/tokenizer.ts';
export { train, type TrainOptions, type RunSummary } from './train/run.ts';
export { resolveRunConfig, RunConfigSchema, type RunConfig, type RunConfigInput } from './train/config.ts';
