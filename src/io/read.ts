/**
 * Reading a file whose absence or unreadability is the user's mistake: one message shape for every
 * reader ("file not found (ENOENT)", "cannot read file: EACCES: ..."), wrapped in the caller's error
 * class (FormatError, DataError, ConfigError) so the message names the field or file.
 */
import { readFileSync, promises as fsp } from 'node:fs';

function describe(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found (ENOENT)';
  if (code === 'EISDIR') return 'expected a file, found a directory (EISDIR)';
  return `cannot read file: ${code ? `${code}: ` : ''}${(e as Error).message}`;
}

/** readFileSync, with `fail(message)` thrown (its cause set) when the file cannot be read. */
export function readFileOr(path: string, fail: (message: string) => Error): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = fail(describe(e));
    err.cause = e;
    throw err;
  }
}

/** The async variant of readFileOr. */
export async function readFileOrAsync(path: string, fail: (message: string) => Error): Promise<Buffer> {
  try {
    return await fsp.readFile(path);
  } catch (e) {
    const err = fail(describe(e));
    err.cause = e;
    throw err;
  }
}
