/** Temporary directories for one test file, removed after each test. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

/**
 * Returns a function that makes a fresh directory under the OS temp dir (named `prefix` + random),
 * and registers an afterEach that removes every directory it made during the test.
 * @example const tempDir = scratchDirs('osp-gguf-'); ... const dir = tempDir();
 */
export function scratchDirs(prefix: string): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}
