import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OspError } from '../../src/errors.ts';
import { tempDir } from '../helpers/scratch.ts';
import { type AtomicStage, atomicFaults, sha256, sha256File, writeFileAtomic, writeFileAtomicSync } from '../../src/io/atomic.ts';

afterEach(() => {
  atomicFaults.inject = undefined;
});

function errno(code: string): Error {
  return Object.assign(new Error(`simulated ${code}`), { code });
}

const variants = [
  ['async', (p: string, d: Uint8Array | string) => writeFileAtomic(p, d)],
  ['sync', async (p: string, d: Uint8Array | string) => writeFileAtomicSync(p, d)],
] as const;

describe.each(variants)('writeFileAtomic (%s)', (_name, write) => {
  it('creates and then replaces a file, leaving no temp files', async () => {
    const dir = tempDir('osp-atomic-');
    const p = join(dir, 'ckpt.bin');
    await write(p, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(p)]).toEqual([1, 2, 3]);
    await write(p, 'héllo');
    expect(readFileSync(p, 'utf8')).toBe('héllo');
    await write(p, new Uint8Array(0));
    expect(readFileSync(p).length).toBe(0);
    expect(readdirSync(dir)).toEqual(['ckpt.bin']);
  });

  it('fails with an OspError naming the path when the parent is a regular file', async () => {
    const dir = tempDir('osp-atomic-');
    writeFileSync(join(dir, 'file'), 'x');
    const p = join(dir, 'file', 'ckpt.bin');
    const err = await write(p, 'data').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OspError);
    expect((err as Error).message).toContain(p);
    expect((err as Error).message).toContain('ENOTDIR');
    expect(readdirSync(dir)).toEqual(['file']);
  });

  it('fails without leaving a temp file when the target is a directory', async () => {
    const dir = tempDir('osp-atomic-');
    const p = join(dir, 'target');
    mkdirSync(p);
    writeFileSync(join(p, 'inside'), 'keep');
    await expect(write(p, 'data')).rejects.toThrow(OspError);
    expect(readdirSync(dir)).toEqual(['target']);
    expect(readFileSync(join(p, 'inside'), 'utf8')).toBe('keep');
  });

  for (const [stage, code] of [
    ['open', 'EACCES'],
    ['write', 'ENOSPC'],
    ['fsync', 'EIO'],
    ['rename', 'EXDEV'],
  ] as [AtomicStage, string][]) {
    it(`keeps the old file and removes the temp file when ${stage} fails (${code})`, async () => {
      const dir = tempDir('osp-atomic-');
      const p = join(dir, 'model.safetensors');
      writeFileSync(p, 'old contents');
      let sawTemp = false;
      atomicFaults.inject = (s, tmp) => {
        if (s === stage) {
          sawTemp = tmp.startsWith(join(dir, '.model.safetensors.tmp-'));
          throw errno(code);
        }
      };
      const err = await write(p, 'new contents that never land').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(sawTemp).toBe(true);
      expect(err).toBeInstanceOf(OspError);
      expect((err as Error).message).toContain(p);
      expect((err as Error).message).toContain(code);
      expect((err as OspError).cause).toBeInstanceOf(Error);
      expect(readFileSync(p, 'utf8')).toBe('old contents');
      expect(readdirSync(dir)).toEqual(['model.safetensors']);
    });
  }
});

describe('sha256', () => {
  it('matches the FIPS 180-2 test vectors', async () => {
    expect(sha256('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const dir = tempDir('osp-atomic-');
    const p = join(dir, 'a.txt');
    writeFileSync(p, 'abc');
    expect(await sha256File(p)).toBe(sha256('abc'));
    const big = new Uint8Array(3_000_000).map((_, i) => (i * 7) & 0xff); // several stream chunks
    writeFileSync(p, big);
    expect(await sha256File(p)).toBe(sha256(big));
  });

  it('names the path when the file is missing', async () => {
    const p = join(tempDir('osp-atomic-'), 'missing.bin');
    await expect(sha256File(p)).rejects.toThrow(OspError);
    await expect(sha256File(p)).rejects.toThrow(/missing\.bin.*ENOENT/);
  });
});
