/**
 * Crash-safe file replacement and SHA-256 helpers.
 *
 * writeFileAtomic writes to a temporary file in the target's directory, fsyncs it, renames it over
 * the target and fsyncs the directory. rename(2) within one file system is atomic, so a reader (or a
 * run restarted after a crash or power loss) sees either the old file or the complete new one,
 * never a truncated checkpoint. The temp file must live in the same directory: a rename across file
 * systems is a copy, which is not atomic.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OspError } from '../errors.ts';

/** The steps of an atomic write, named for fault injection in tests. */
export type AtomicStage = 'open' | 'write' | 'fsync' | 'rename';

/**
 * Test seam: when `inject` is set it is called before each stage and may throw to simulate a
 * failure there (ENOSPC during write, EIO on fsync, ...). Real code never sets it.
 * @internal
 */
export const atomicFaults: { inject?: (stage: AtomicStage, tmpPath: string) => void } = {};

/** Name of the temporary file for `path`: hidden, and unique per process and call. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

function wrapError(path: string, cause: unknown): OspError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const msg = cause instanceof Error ? cause.message : String(cause);
  const err = new OspError(`cannot write ${path}: ${code ? `${code}: ` : ''}${msg}`);
  err.cause = cause;
  return err;
}

/** Directory fsync makes the rename itself durable; some platforms cannot open directories for it. */
function ignorableDirSyncError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EISDIR' || code === 'EPERM' || code === 'EINVAL' || code === 'ENOTSUP';
}

/**
 * Replaces the file at `path` with `data` atomically: on success the file holds exactly `data`; on
 * failure it throws an OspError naming the path and the cause (ENOSPC, EACCES, ENOTDIR, ...), the
 * previous file at `path` (if any) is untouched and no temporary file is left behind.
 * A string is written as UTF-8.
 *
 * @example await writeFileAtomic('runs/a/ckpt.safetensors', bytes);
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    atomicFaults.inject?.('open', tmp);
    // 'wx': never follow or reuse an existing file of the same name.
    const fh = await fsp.open(tmp, 'wx', 0o666);
    created = true;
    try {
      atomicFaults.inject?.('write', tmp);
      await fh.writeFile(data);
      atomicFaults.inject?.('fsync', tmp);
      await fh.sync();
    } finally {
      await fh.close();
    }
    atomicFaults.inject?.('rename', tmp);
    await fsp.rename(tmp, path);
    created = false;
  } catch (e) {
    if (created) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw wrapError(path, e);
  }
  try {
    const dir = await fsp.open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw wrapError(path, e);
  }
}

/** Synchronous writeFileAtomic, for exit handlers and other places that cannot await. */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = tempPathFor(path);
  let created = false;
  try {
    atomicFaults.inject?.('open', tmp);
    const fd = fs.openSync(tmp, 'wx', 0o666);
    created = true;
    try {
      atomicFaults.inject?.('write', tmp);
      fs.writeFileSync(fd, data);
      atomicFaults.inject?.('fsync', tmp);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    atomicFaults.inject?.('rename', tmp);
    fs.renameSync(tmp, path);
    created = false;
  } catch (e) {
    if (created) fs.rmSync(tmp, { force: true });
    throw wrapError(path, e);
  }
  try {
    const fd = fs.openSync(dirname(path), 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw wrapError(path, e);
  }
}

/**
 * SHA-256 of bytes (or a string, as UTF-8), lowercase hex.
 * @example sha256('abc') === 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
 */
export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * SHA-256 of a file's contents, lowercase hex, streamed so large checkpoints are not loaded whole.
 * A missing or unreadable file gives an OspError naming the path.
 * @example const digest = await sha256File('runs/a/ckpt.safetensors');
 */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const err = new OspError(`cannot read ${path}: ${code ? `${code}: ` : ''}${(e as Error).message}`);
    err.cause = e;
    throw err;
  }
  return hash.digest('hex');
}
