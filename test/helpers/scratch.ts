/**
 * Temporary directories for tests: the one helper every test uses to make one.
 *
 * tempDir() makes a fresh directory under the OS temp dir and records it; the afterAll that the vitest
 * setup file test/setup/scratch.ts registers removes every recorded directory when the test file ends
 * (after the file's own afterAll hooks: "after" hooks run as a stack, and the setup file's is registered
 * first). Each test file runs in its own process (pool 'forks'), so the record is per file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Kept on globalThis so that a second instance of this module (after vi.resetModules, say) still
// records into the list the setup file empties.
const RECORD = Symbol.for('osp-lab.test.tempDirs');
const made = ((globalThis as Record<symbol, unknown>)[RECORD] ??= []) as string[];

/**
 * Makes a fresh directory under os.tmpdir() named `prefix` + random characters; it is removed when the
 * test file ends.
 * @example const dir = tempDir('osp-gguf-');
 */
export function tempDir(prefix = 'osp-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/**
 * Removes every directory tempDir() has made so far (those a test already removed are skipped). Called
 * by test/setup/scratch.ts; throws, after trying them all, if some could not be removed.
 */
export function removeTempDirs(): void {
  const failed: unknown[] = [];
  for (const dir of made.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      failed.push(e);
    }
  }
  if (failed.length > 0) throw new AggregateError(failed, `could not remove ${failed.length} of the test's temporary directories`);
}
