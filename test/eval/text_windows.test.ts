import { describe, expect, it } from 'vitest';
import { textWindows } from '../../src/data/text.ts';
import { textBatch } from '../../src/eval/analyze.ts';
import { calibrationFromTokens } from '../../src/quant/calibration.ts';
import { tempDir as makeTempDir } from '../helpers/scratch.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const BOS = 256;
/** BOS then bytes 0..n-1 (mod 256), as readTextTokens returns a text file. */
const stream = (n: number) => Uint16Array.from({ length: n + 1 }, (_, i) => (i === 0 ? BOS : (i - 1) % 256));

const tempDir = () => makeTempDir('osp-textwin-');

describe('evaluation windows of a run trained with batch.bos', () => {
  it('textWindows: every window starts with BOS, every text token is predicted exactly once', () => {
    for (const n of [1, 7, 8, 9, 16, 37]) {
      const s = stream(n);
      const windows = textWindows(s, 8, BOS);
      expect(windows.length).toBe(Math.ceil(n / 8));
      const predicted: number[] = [];
      for (const w of windows) {
        expect(w.seqLen).toBeLessThanOrEqual(8);
        expect(w.inputs[0]).toBe(BOS);
        expect(Array.from(w.inputs.subarray(1))).toEqual(Array.from(w.targets.subarray(0, w.seqLen - 1)));
        predicted.push(...w.targets);
      }
      expect(predicted).toEqual(Array.from(s.subarray(1)));
    }
    // Without BOS the windows overlap by one token and the first input is the stream's own BOS.
    const plain = textWindows(stream(16), 8);
    expect(plain.length).toBe(2);
    expect(plain[1]!.inputs[0]).toBe(7);
  });

  it('GPTQ calibration windows from a text have the same shape as the training rows', () => {
    const batches = calibrationFromTokens(stream(40), 8, 4, 'calib.txt', BOS);
    const rows = batches.reduce((a, b) => a + b.batchSize, 0);
    expect(rows).toBe(4);
    const b = batches[0]!;
    for (let r = 0; r < b.batchSize; r++) {
      expect(b.inputs[r * 8]).toBe(BOS);
      expect(b.targets[r * 8]).toBe((r * 8) % 256);
    }
    expect(() => calibrationFromTokens(stream(7), 8, 4, 'calib.txt', BOS)).toThrow(/calib.txt: GPTQ calibration needs at least 8 tokens/);
  });

  it('osp analyze batch: B rows of T bytes, each BOS first', () => {
    const dir = tempDir();
    const path = join(dir, 'a.txt');
    writeFileSync(path, Buffer.from(Array.from({ length: 20 }, (_, i) => 65 + i)));
    const b = textBatch(path, 2, 8, BOS);
    expect(Array.from(b.inputs)).toEqual([BOS, 65, 66, 67, 68, 69, 70, 71, BOS, 73, 74, 75, 76, 77, 78, 79]);
    expect(Array.from(b.targets)).toEqual(Array.from({ length: 16 }, (_, i) => 65 + i));
    expect(() => textBatch(path, 3, 8, BOS)).toThrow(/needs 24 bytes \(B x T, rows start with BOS\), the file has 20/);
  });
});
