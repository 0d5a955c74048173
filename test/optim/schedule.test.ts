import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { createSchedule, lrFactor } from '../../src/optim/index.ts';

describe('lrFactor', () => {
  it('constant: linear warmup (step+1)/warmup, then 1', () => {
    const c = { kind: 'constant', warmupSteps: 4 };
    expect([0, 1, 2, 3, 4, 100].map((s) => lrFactor(s, c))).toEqual([0.25, 0.5, 0.75, 1, 1, 1]);
    expect(lrFactor(0, { kind: 'constant' })).toBe(1);
  });

  it('cosine: warmup, then half a cosine from 1 to minLrRatio over [warmup, total]', () => {
    const c = { kind: 'cosine', warmupSteps: 10, totalSteps: 110, minLrRatio: 0.1 };
    expect(lrFactor(0, c)).toBeCloseTo(0.1, 12);
    expect(lrFactor(4, c)).toBeCloseTo(0.5, 12);
    expect(lrFactor(9, c)).toBeCloseTo(1, 12);
    expect(lrFactor(10, c)).toBeCloseTo(1, 12);
    expect(lrFactor(60, c)).toBeCloseTo(0.55, 12); // midpoint: (1 + 0.1) / 2
    expect(lrFactor(35, c)).toBeCloseTo(0.1 + 0.9 * 0.5 * (1 + Math.SQRT1_2), 12); // a quarter of the way
    expect(lrFactor(110, c)).toBeCloseTo(0.1, 12);
    expect(lrFactor(500, c)).toBeCloseTo(0.1, 12);
  });

  it('cosine defaults: kind cosine, no warmup, minLrRatio 0.1', () => {
    expect(lrFactor(0, { totalSteps: 100 })).toBe(1);
    expect(lrFactor(50, { totalSteps: 100 })).toBeCloseTo(0.55, 12);
  });

  it('wsd: stable at 1, then linear decay to minLrRatio over the last decayFraction of steps', () => {
    const c = { kind: 'wsd', warmupSteps: 5, totalSteps: 100, minLrRatio: 0.0, decayFraction: 0.2 };
    expect(lrFactor(0, c)).toBeCloseTo(0.2, 12);
    expect(lrFactor(50, c)).toBe(1);
    expect(lrFactor(79, c)).toBe(1);
    expect(lrFactor(80, c)).toBeCloseTo(1, 12);
    expect(lrFactor(90, c)).toBeCloseTo(0.5, 12);
    expect(lrFactor(95, c)).toBeCloseTo(0.25, 12);
    expect(lrFactor(100, c)).toBeCloseTo(0, 12);
    const d = createSchedule({ kind: 'wsd', totalSteps: 1000 }); // defaults: decay over the last 200 to 0.1
    expect(d(799)).toBe(1);
    expect(d(900)).toBeCloseTo(0.55, 12);
    expect(d(1000)).toBeCloseTo(0.1, 12);
  });

  it('names the missing or inconsistent field', () => {
    expect(() => createSchedule({ kind: 'cosine' })).toThrow(ConfigError);
    expect(() => createSchedule({ kind: 'wsd' })).toThrow(/^schedule\.totalSteps: required by kind 'wsd'/);
    expect(() => createSchedule({ kind: 'cosine', warmupSteps: 20, totalSteps: 10 })).toThrow(/schedule\.warmupSteps/);
    expect(() => createSchedule({ kind: 'linear' })).toThrow(
      /schedule\.kind: unknown value "linear"; valid choices: 'constant', 'cosine', 'wsd'/,
    );
    expect(() => createSchedule({ kind: 'constant', warmup: 5 })).toThrow(/schedule\.warmup: unknown key/);
    expect(createSchedule({ kind: 'constant' })(7)).toBe(1); // constant needs no totalSteps
  });

  it('wsd: a warmup that runs into the decay phase is refused, naming where the decay starts', () => {
    // 100 steps, decay over the last 20% from step 80: a 90-step warmup would never reach the stable phase.
    expect(() => createSchedule({ kind: 'wsd', warmupSteps: 90, totalSteps: 100, decayFraction: 0.2 })).toThrow(
      /^schedule\.warmupSteps: 90 overlaps the wsd decay, which starts at step 80 \(the last 20% of 100 steps\)/,
    );
    // Warmup ending exactly where the decay starts is allowed.
    expect(createSchedule({ kind: 'wsd', warmupSteps: 80, totalSteps: 100, decayFraction: 0.2 })(79)).toBe(1);
  });
});
