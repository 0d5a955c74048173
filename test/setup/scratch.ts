/**
 * Vitest setup file (runs in each test file's process before the file): removes the temporary
 * directories that tempDir() (test/helpers/scratch.ts) made during the file, once the file ends.
 * Registered before any of the file's own hooks, this afterAll runs after all of them.
 */
import { afterAll } from 'vitest';
import { removeTempDirs } from '../helpers/scratch.ts';

afterAll(removeTempDirs);
