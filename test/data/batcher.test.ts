import { describe, expect, it } from 'vitest';
import { Batcher, evalBatches, type Batch } from '../../src/data/batcher.ts';
import { TokenDataset } from '../../src/data/dataset.ts';
import { ConfigError, DataError } from '../../src/errors.ts';

/** A stream whose token at position i is i, so every row says where it came from. */
const counting = (n: number, name = 'counting') =>
  new TokenDataset(
    name,
    Uint16Array.from({ length: n }, (_, i) => i),
  );

/** Start position in the stream of each row of a batch (inputs[row, 0] = start, by construction). */
const rowStarts = (b: Batch) => Array.from({ length: b.batchSize }, (_, r) => b.inputs[r * b.seqLen]!);

describe('Batcher', () => {
  const T = 8;
  // 1 + 13 * 8 + 3 tokens: 13 windows, and 3 tail tokens that no window can use.
  const data = counting(1 + 13 * T + 3);
  const opts = { batchSize: 5, seqLen: T, seed: 42 };

  it('cuts windows of seqLen + 1 at multiples of seqLen', () => {
    expect(new Batcher(data, opts).windows).toBe(13);
    expect(new Batcher(counting(T + 1), { ...opts, batchSize: 1 }).windows).toBe(1);
    expect(new Batcher(counting(2 * T), { ...opts, batchSize: 1 }).windows).toBe(1);
    expect(new Batcher(counting(2 * T + 1), { ...opts, batchSize: 1 }).windows).toBe(2);
  });

  it('targets are the inputs shifted by one, row-major [B, T]', () => {
    const b = new Batcher(data, opts).next();
    expect(b.inputs.length).toBe(5 * T);
    expect(b.targets.length).toBe(5 * T);
    for (let r = 0; r < 5; r++) {
      const start = b.inputs[r * T]!;
      expect(start % T).toBe(0);
      for (let t = 0; t < T; t++) {
        expect(b.inputs[r * T + t]).toBe(start + t);
        expect(b.targets[r * T + t]).toBe(start + t + 1);
      }
    }
  });

  it('visits every window exactly once per epoch, so each target position is predicted once', () => {
    const batcher = new Batcher(data, opts);
    // 13 windows, batches of 5: batches straddle epochs, and 13 * 5 rows are exactly five epochs.
    const starts = Array.from({ length: 13 }, () => rowStarts(batcher.next())).flat();
    const epochs = Array.from({ length: 5 }, (_, e) => starts.slice(13 * e, 13 * (e + 1)));
    const all = Array.from({ length: 13 }, (_, w) => w * T);
    for (const e of epochs) expect([...e].sort((a, b) => a - b)).toEqual(all);
    expect(batcher.state()).toEqual({ epoch: 5, index: 0 });
    // Targets of one epoch cover positions 1 .. 13*T once each.
    const covered = epochs[0]!.flatMap((s) => Array.from({ length: T }, (_, t) => s + t + 1)).sort((a, b) => a - b);
    expect(covered).toEqual(Array.from({ length: 13 * T }, (_, i) => i + 1));
    // Two epochs differ in order, and the order depends on the seed.
    expect(epochs[1]).not.toEqual(epochs[0]);
    const other = new Batcher(data, { ...opts, seed: 43 });
    expect(
      Array.from({ length: 3 }, () => rowStarts(other.next()))
        .flat()
        .slice(0, 13),
    ).not.toEqual(epochs[0]);
  });

  it('is deterministic for a seed', () => {
    const a = new Batcher(data, opts);
    const b = new Batcher(data, opts);
    for (let i = 0; i < 7; i++) expect(a.next()).toEqual(b.next());
  });

  it('resumed from state() in the middle of epoch 2 yields the same next 10 batches', () => {
    const big = counting(1 + 50 * T);
    const o = { batchSize: 4, seqLen: T, seed: 7 };
    const uninterrupted = new Batcher(big, o);
    for (let i = 0; i < 17; i++) uninterrupted.next(); // 68 windows: epoch 1 (the second), index 18
    const saved = JSON.parse(JSON.stringify(uninterrupted.state())) as ReturnType<Batcher['state']>;
    expect(saved).toEqual({ epoch: 1, index: 18 });
    const expected = Array.from({ length: 10 }, () => uninterrupted.next()); // crosses into epoch 2

    const resumed = new Batcher(big, o);
    resumed.next(); // its own position does not matter once the state is set
    resumed.setState(saved);
    for (const e of expected) expect(resumed.next()).toEqual(e);
    expect(resumed.state()).toEqual(uninterrupted.state());
  });

  it('Fisher-Yates gives uniformly distributed orders', () => {
    // 5 windows have 120 orders; over 12,000 epochs each should appear ~100 times. Chi-square with 119
    // degrees of freedom stays below 180 with probability 0.9997 (a biased shuffle lands far above).
    const b = new Batcher(counting(1 + 5), { batchSize: 1, seqLen: 1, seed: 3 });
    const counts = new Map<string, number>();
    for (let e = 0; e < 12_000; e++) {
      const key = Array.from(b.orderOf(e)).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(120);
    const chi2 = [...counts.values()].reduce((s, c) => s + (c - 100) ** 2 / 100, 0);
    expect(chi2).toBeLessThan(180);
  });

  it('a dataset shorter than seqLen + 1 is a DataError naming it', () => {
    const short = counting(100, 'tiny/val');
    expect(() => new Batcher(short, { batchSize: 1, seqLen: 512, seed: 0 })).toThrow(DataError);
    expect(() => new Batcher(short, { batchSize: 1, seqLen: 512, seed: 0 })).toThrow(
      'tiny/val: sequence length 512 needs at least 513 tokens, dataset tiny/val has 100',
    );
  });

  it('rejects bad options and cursors from another dataset', () => {
    expect(() => new Batcher(data, { ...opts, batchSize: 0 })).toThrow(ConfigError);
    expect(() => new Batcher(data, { ...opts, seqLen: 2.5 })).toThrow(/seqLen/);
    expect(() => new Batcher(data, { ...opts, seed: -1 })).toThrow(/seed/);
    const b = new Batcher(data, opts);
    expect(() => b.setState({ epoch: 0, index: 13 })).toThrow(/expected an index in \[0, 13\).*found 13/);
    expect(() => b.setState({ epoch: -1, index: 0 })).toThrow(DataError);
  });
});

describe('evalBatches', () => {
  const T = 4;
  const data = counting(1 + 23 * T, 'val');

  it('yields sequential, unshuffled windows, the same on every call', () => {
    const a = evalBatches(data, { batchSize: 5, seqLen: T });
    const b = evalBatches(data, { batchSize: 5, seqLen: T });
    expect(a).toEqual(b);
    expect(a.length).toBe(4); // 23 windows -> 4 full batches of 5; the last 3 windows are left out
    a.forEach((batch, i) => {
      expect(rowStarts(batch)).toEqual([0, 1, 2, 3, 4].map((r) => (i * 5 + r) * T));
      for (let k = 0; k < batch.targets.length; k++) expect(batch.targets[k]).toBe(batch.inputs[k]! + 1);
    });
  });

  it('respects maxBatches', () => {
    const few = evalBatches(data, { batchSize: 2, seqLen: T, maxBatches: 3 });
    expect(few.length).toBe(3);
    expect(few).toEqual(evalBatches(data, { batchSize: 2, seqLen: T }).slice(0, 3));
  });

  it('needs at least one full batch', () => {
    expect(() => evalBatches(counting(10, 'v'), { batchSize: 4, seqLen: T })).toThrow(
      'v: evaluation with batchSize 4 and sequence length 4 needs at least 17 tokens, dataset v has 10',
    );
    expect(() => evalBatches(counting(3, 'v'), { batchSize: 1, seqLen: T })).toThrow(/needs at least 5 tokens/);
    // The caller names what the batches are for (the outlier monitor's batch is not the evaluation's).
    expect(() => evalBatches(counting(10, 'v'), { batchSize: 4, seqLen: T, purpose: 'the outlier monitor (monitor.batchSize)' })).toThrow(
      'v: the outlier monitor (monitor.batchSize) with batchSize 4 and sequence length 4 needs at least 17 tokens',
    );
  });
});

describe('rows that start with BOS (batch.bos)', () => {
  const T = 8;
  const BOS = 60000; // above every token of the counting stream, so a BOS can never be mistaken for text
  // 13 * 8 + 3 tokens: 13 windows of 8 targets, 3 tail tokens no window can use.
  const data = counting(13 * T + 3);
  const opts = { batchSize: 5, seqLen: T, seed: 42, bos: BOS };

  it('every row is BOS then the window; its targets are the window itself', () => {
    const b = new Batcher(data, opts).next();
    for (let r = 0; r < 5; r++) {
      const start = b.targets[r * T]!;
      expect(start % T).toBe(0);
      expect(b.inputs[r * T]).toBe(BOS);
      for (let t = 0; t < T; t++) {
        expect(b.targets[r * T + t]).toBe(start + t);
        if (t > 0) expect(b.inputs[r * T + t]).toBe(start + t - 1);
      }
    }
  });

  it('every token, the first included, is a target exactly once per epoch', () => {
    const batcher = new Batcher(data, opts);
    expect(batcher.windows).toBe(13);
    expect(new Batcher(counting(T), { ...opts, batchSize: 1 }).windows).toBe(1);
    expect(new Batcher(counting(2 * T - 1), { ...opts, batchSize: 1 }).windows).toBe(1);
    expect(new Batcher(counting(2 * T), { ...opts, batchSize: 1 }).windows).toBe(2);
    const targets: number[] = [];
    // 13 batches of 5 rows = 5 epochs of 13 windows.
    for (let i = 0; i < 13; i++) targets.push(...batcher.next().targets);
    const epoch0 = targets.slice(0, 13 * T).sort((a, b) => a - b);
    expect(epoch0).toEqual(Array.from({ length: 13 * T }, (_, i) => i));
    expect(batcher.state()).toEqual({ epoch: 5, index: 0 });
  });

  it('resumes on the same trajectory, and the window order is the one without BOS', () => {
    const a = new Batcher(data, opts);
    for (let i = 0; i < 4; i++) a.next();
    const b = new Batcher(data, opts);
    b.setState(a.state());
    for (let i = 0; i < 5; i++) expect(b.next()).toEqual(a.next());
    // Same seed, same order of windows: BOS changes what a row holds, not which windows come when.
    const plain = new Batcher(counting(13 * T + 1), { batchSize: 5, seqLen: T, seed: 42 });
    const withBos = new Batcher(data, opts);
    expect(Array.from(withBos.next().targets.filter((_, k) => k % T === 0))).toEqual(rowStarts(plain.next()));
  });

  it('evalBatches: sequential windows with BOS first; a short stream names what is needed', () => {
    const val = counting(4 * T, 'val');
    const batches = evalBatches(val, { batchSize: 2, seqLen: T, bos: BOS });
    expect(batches.length).toBe(2);
    expect(Array.from(batches[1]!.targets)).toEqual(Array.from({ length: 2 * T }, (_, i) => 2 * T + i));
    expect(batches[1]!.inputs[T]).toBe(BOS);
    expect(() => evalBatches(counting(2 * T - 1, 'v'), { batchSize: 2, seqLen: T, bos: BOS })).toThrow(
      'v: evaluation with batchSize 2 and sequence length 8 needs at least 16 tokens, dataset v has 15',
    );
    expect(() => new Batcher(data, { ...opts, bos: -1 })).toThrow(ConfigError);
  });
});
