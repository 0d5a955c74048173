/**
 * Checkpoints: `<runDir>/checkpoints/step_00000100/` holding
 *   model.safetensors      parameters by Hugging Face-style name, F32, [out, in] layout
 *   optimizer.safetensors  optimizer state ('adamw/<param>/exp_avg', 'muon/<param>/momentum', ...)
 *   state.json             step, seed, data cursor, trainer and callback state, the config, and the
 *                          sha256 of both safetensors files
 * A checkpoint is written into a hidden temporary directory and renamed into place only when every
 * file is on disk (fsync'd), so a crash never leaves a half-written checkpoint as the latest one.
 * Loading verifies the checksums; `findLatestCheckpoint` falls back to the newest good checkpoint.
 */
import { existsSync, fsyncSync, mkdirSync, openSync, closeSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FormatError, OspError } from '../errors.ts';
import { writeFileAtomicSync, sha256 } from '../io/atomic.ts';
import { readFileOr } from '../io/read.ts';
import { decodeSafetensors, encodeSafetensors, toFloat32, type TensorEntry } from '../io/safetensors.ts';
import type { Optimizer } from '../optim/optimizer.ts';
import type { Transformer } from '../model/transformer.ts';

export const CHECKPOINT_VERSION = 1;

/** Everything in state.json. */
export interface CheckpointState {
  version: number;
  step: number;
  seed: number;
  /** Batcher cursor. */
  data: unknown;
  trainer: unknown;
  callbacks: Record<string, unknown>;
  /** The run's resolved config. */
  config: unknown;
  /** sha256 (hex) of each data file in the checkpoint directory. */
  files: Record<string, string>;
  savedAt: string;
  /**
   * sha256 of this object's JSON without this field: a flipped bit in state.json (a step, a cursor)
   * would otherwise parse and silently change the trajectory.
   */
  checksum?: string;
}

/** The checksum of a state object: sha256 of its JSON without `checksum` (key order as written). */
function stateChecksum(state: CheckpointState): string {
  const { checksum: _ignored, ...rest } = state;
  return sha256(JSON.stringify(rest));
}

const DIR_RE = /^step_(\d{8,})$/;

export function checkpointDirName(step: number): string {
  return `step_${String(step).padStart(8, '0')}`;
}

async function entriesOf(tensors: Iterable<[string, tf.Tensor]>): Promise<[string, TensorEntry][]> {
  const out: [string, TensorEntry][] = [];
  for (const [name, t] of tensors) {
    const values = await t.data();
    const dtype = t.dtype === 'int32' ? 'I32' : 'F32';
    if (t.dtype !== 'int32' && t.dtype !== 'float32') throw new OspError(`checkpoint: cannot save ${name} of dtype ${t.dtype}`);
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
    out.push([name, { dtype, shape: [...t.shape], data: bytes }]);
  }
  return out;
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a checkpoint for `state.step` and returns its directory. An existing checkpoint of the same
 * step is left as it is (it holds the same state) and its path returned.
 */
export async function saveCheckpoint(
  runDir: string,
  model: Transformer,
  optimizer: Optimizer,
  state: Omit<CheckpointState, 'version' | 'files' | 'savedAt'>,
): Promise<string> {
  const root = join(runDir, 'checkpoints');
  mkdirSync(root, { recursive: true });
  const final = join(root, checkpointDirName(state.step));
  if (existsSync(final)) return final;
  const tmp = join(root, `.tmp-${checkpointDirName(state.step)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const optState = optimizer.stateDict();
    let optEntries: [string, TensorEntry][];
    try {
      optEntries = await entriesOf(optState);
    } finally {
      tf.dispose([...optState.values()]);
    }
    const files: Record<string, string> = {};
    const write = (name: string, bytes: Uint8Array) => {
      writeFileAtomicSync(join(tmp, name), bytes);
      files[name] = sha256(bytes);
    };
    write('model.safetensors', encodeSafetensors(await entriesOf(model.params), { format: 'pt', producer: 'osp-lab' }));
    write('optimizer.safetensors', encodeSafetensors(optEntries, { format: 'pt', producer: 'osp-lab' }));
    const full: CheckpointState = { version: CHECKPOINT_VERSION, ...state, files, savedAt: new Date().toISOString() };
    full.checksum = stateChecksum(full);
    writeFileAtomicSync(join(tmp, 'state.json'), JSON.stringify(full, null, 1));
    renameSync(tmp, final);
    fsyncDir(root);
    return final;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new OspError(`checkpoint for step ${state.step} could not be written to ${root}: ${(e as Error).message}`);
  }
}

/** Completed checkpoint directories of a run, newest first. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  const root = join(runDir, 'checkpoints');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => ({ m: DIR_RE.exec(name), name }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), dir: join(root, x.name) }))
    .sort((a, b) => b.step - a.step);
}

/** Reads and verifies a checkpoint directory: state.json parses, and every file matches its sha256. */
export function readCheckpoint(dir: string): {
  state: CheckpointState;
  model: Map<string, TensorEntry>;
  optimizer: Map<string, TensorEntry>;
} {
  const statePath = join(dir, 'state.json');
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileOr(statePath, (msg) => new FormatError(statePath, msg)).toString('utf8')) as CheckpointState;
  } catch (e) {
    throw new FormatError(statePath, `unreadable checkpoint state: ${(e as Error).message}`);
  }
  if (typeof state !== 'object' || state === null || state.version !== CHECKPOINT_VERSION) {
    throw new FormatError(statePath, `checkpoint version ${state?.version}, this osp-lab reads ${CHECKPOINT_VERSION}`);
  }
  if (state.checksum !== stateChecksum(state)) {
    throw new FormatError(statePath, `checksum mismatch: state.json was modified or corrupted after it was written`);
  }
  const read = (name: string) => {
    const path = join(dir, name);
    const bytes = readFileOr(path, (msg) => new FormatError(path, `checkpoint file: ${msg}`));
    const expected = state.files?.[name];
    const actual = sha256(bytes);
    if (expected !== actual) {
      throw new FormatError(path, `checksum mismatch: state.json records sha256 ${expected}, the file has ${actual}`);
    }
    return decodeSafetensors(bytes, path).tensors;
  };
  return { state, model: read('model.safetensors'), optimizer: read('optimizer.safetensors') };
}

/**
 * The newest checkpoint that verifies, and the ones skipped on the way with the reason (corrupt or
 * incomplete), so the caller can say what it fell back from.
 */
export function findLatestCheckpoint(runDir: string): {
  found?: { dir: string; checkpoint: ReturnType<typeof readCheckpoint> };
  skipped: { dir: string; reason: string }[];
} {
  const skipped: { dir: string; reason: string }[] = [];
  for (const { dir } of listCheckpoints(runDir)) {
    try {
      return { found: { dir, checkpoint: readCheckpoint(dir) }, skipped };
    } catch (e) {
      skipped.push({ dir, reason: (e as Error).message });
    }
  }
  return { skipped };
}

/** Puts checkpoint tensors into the model's variables (all names and shapes must match first). */
export function loadModelWeights(model: Transformer, tensors: ReadonlyMap<string, TensorEntry>, source: string): void {
  for (const [name, p] of model.params) {
    const t = tensors.get(name);
    if (!t) throw new FormatError(source, `missing parameter '${name}'`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new FormatError(source, `parameter '${name}' has shape [${t.shape}], the model expects [${p.shape}]`);
    }
  }
  for (const name of tensors.keys()) {
    if (!model.params.has(name)) throw new FormatError(source, `unexpected parameter '${name}' (not in this model)`);
  }
  for (const [name, p] of model.params) {
    const t = tensors.get(name)!;
    const values = toFloat32(t);
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) throw new FormatError(source, `parameter '${name}' holds a non-finite value at index ${i}`);
    }
    tf.tidy(() => p.assign(tf.tensor(values, p.shape)));
  }
}

/** Optimizer state tensors from checkpoint entries; the caller disposes them after loadStateDict. */
export function optimizerTensors(tensors: ReadonlyMap<string, TensorEntry>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of tensors) {
    if (t.dtype === 'I32') {
      out.set(name, tf.tensor(new Int32Array(t.data.slice().buffer), t.shape, 'int32'));
    } else out.set(name, tf.tensor(toFloat32(t), t.shape, 'float32'));
  }
  return out;
}

/**
 * Deletes all but the newest `keep` checkpoints. Each one is first renamed to a hidden `.tmp-`
 * name (atomic) and only then removed: a crash during the recursive delete would otherwise leave a
 * half-deleted `step_*` directory that looks like a checkpoint. A leftover `.tmp-` directory is
 * removed by `removeCheckpointLeftovers` at the next start. `remove` is for tests (a crash
 * mid-delete).
 */
export function pruneCheckpoints(
  runDir: string,
  keep: number,
  remove: (dir: string) => void = (dir) => rmSync(dir, { recursive: true, force: true }),
): void {
  const root = join(runDir, 'checkpoints');
  for (const { dir } of listCheckpoints(runDir).slice(keep)) {
    const doomed = join(root, `.tmp-prune-${basename(dir)}-${process.pid}`);
    renameSync(dir, doomed);
    fsyncDir(root);
    remove(doomed);
  }
}

/**
 * Opens a checkpoint given either its own directory or a run directory (then the newest good one).
 * Throws an error naming the path when there is none.
 */
export function openCheckpoint(path: string): { dir: string; checkpoint: ReturnType<typeof readCheckpoint> } {
  if (existsSync(join(path, 'state.json'))) return { dir: path, checkpoint: readCheckpoint(path) };
  const { found, skipped } = findLatestCheckpoint(path);
  if (found) return found;
  const why = skipped.length ? `; skipped: ${skipped.map((s) => s.reason).join('; ')}` : '';
  throw new OspError(`${path}: no checkpoint found (expected a checkpoint directory with state.json, or a run directory)${why}`);
}

/** Deletes temporary checkpoint directories (`.tmp-*`) left by a process killed while writing one. */
export function removeCheckpointLeftovers(runDir: string, log: (line: string) => void): void {
  const root = join(runDir, 'checkpoints');
  if (!existsSync(root)) return;
  for (const name of readdirSync(root)) {
    if (!name.startsWith('.tmp-')) continue;
    rmSync(join(root, name), { recursive: true, force: true });
    log(`removed ${join(root, name)} (left by a checkpoint write or prune that a crash interrupted)`);
  }
}
