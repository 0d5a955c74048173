/**
 * Learning-rate schedules as a factor in [0, 1] that multiplies every optimizer's base lr.
 * 'wsd' (warmup-stable-decay) keeps the lr flat and decays only at the end, so a run can be
 * extended or branched from a stable-phase checkpoint.
 */
import { z } from 'zod';
import { parseConfig } from '../utils/parse_config.ts';
import { ConfigError } from '../errors.ts';

export const SCHEDULE_KINDS = ['constant', 'cosine', 'wsd'] as const;

export const ScheduleConfigSchema = z.strictObject({
  kind: z
    .enum(SCHEDULE_KINDS)
    .default('cosine')
    .describe(
      "'constant', 'cosine' (to minLrRatio over totalSteps) or 'wsd' (warmup-stable-decay: constant, then a linear decay over the last decayFraction).",
    ),
  warmupSteps: z.number().int().min(0).default(0).describe('Linear warmup: factor (step+1)/warmupSteps for the first warmupSteps steps.'),
  totalSteps: z.number().int().positive().optional().describe("Length of the run; required by 'cosine' and 'wsd'."),
  minLrRatio: z.number().min(0).max(1).default(0.1).describe("Final factor of 'cosine' and 'wsd'."),
  decayFraction: z
    .number()
    .gt(0)
    .max(1)
    .default(0.2)
    .describe("'wsd' only: the last decayFraction of totalSteps decay linearly to minLrRatio."),
});
export type ScheduleConfig = z.infer<typeof ScheduleConfigSchema>;

/**
 * Validates a schedule config (field prefix `schedule`) and returns step -> lr factor, step 0-based.
 * Cosine and wsd reach minLrRatio at step totalSteps and stay there after it.
 * @example
 *   const f = createSchedule({ kind: 'cosine', warmupSteps: 100, totalSteps: 1000 });
 *   f(0); // 0.01    f(99); // 1    f(1000); // 0.1
 */
export function createSchedule(config: unknown): (step: number) => number {
  return buildSchedule(parseConfig(ScheduleConfigSchema, config, 'schedule'));
}

/** createSchedule for an already validated schedule section: checks its rules, parses nothing. */
export function buildSchedule(c: ScheduleConfig): (step: number) => number {
  const { kind, warmupSteps: warm, minLrRatio: min } = c;
  if (kind === 'constant') return (step) => (step < warm ? (step + 1) / warm : 1);
  const total = c.totalSteps;
  if (total === undefined) {
    throw new ConfigError('schedule.totalSteps', `required by kind '${kind}'; set it to the number of training steps`);
  }
  if (warm > total) throw new ConfigError('schedule.warmupSteps', `${warm} exceeds schedule.totalSteps (${total})`);
  if (kind === 'cosine') {
    return (step) => {
      if (step < warm) return (step + 1) / warm;
      const progress = total === warm ? 1 : Math.min(1, (step - warm) / (total - warm));
      return min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
    };
  }
  const decaySteps = c.decayFraction * total;
  const decayStart = total - decaySteps;
  if (warm > decayStart) {
    throw new ConfigError(
      'schedule.warmupSteps',
      `${warm} overlaps the wsd decay, which starts at step ${decayStart} (the last ${c.decayFraction * 100}% of ${total} ` +
        `steps); shorten the warmup to at most ${Math.floor(decayStart)} or lower schedule.decayFraction`,
    );
  }
  return (step) => {
    if (step < warm) return (step + 1) / warm;
    if (step < decayStart) return 1;
    return 1 - (1 - min) * Math.min(1, (step - decayStart) / decaySteps);
  };
}

/** The lr factor at one 0-based step; see createSchedule (which avoids re-validating per step). */
export function lrFactor(step: number, config: unknown): number {
  return createSchedule(config)(step);
}
