/**
 * What a `--resume` may change. The checkpoint fixes the model (its weights have those shapes) and
 * the step it stopped at; the lr schedule may change only where it does not make the lr jump at the
 * step the run continues from, unless the caller asks for it (`--extend-schedule`). Everything is
 * checked before anything is written, so a refused resume leaves the run as it was.
 */
import { ConfigError } from '../errors.ts';
import type { RunConfig } from './config.ts';
import { buildSchedule, createSchedule } from '../optim/schedule.ts';

/**
 * Leaves of two JSON values that differ, as `path: a, now b` (paths joined with '.'). A key the
 * checkpoint's config does not have is skipped: it was added to osp-lab after that run was saved,
 * which then ran with its default.
 */
export function jsonDiff(a: unknown, b: unknown, path: string): string[] {
  if (a === undefined) return [];
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => jsonDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [`${path}: checkpoint ${JSON.stringify(a)}, now ${JSON.stringify(b)}`];
}

/**
 * Checks a resumed run's config against the checkpoint it continues from. Returns notices to print
 * (an accepted schedule change); throws a ConfigError naming every field that cannot change.
 * @param saved the config stored in the checkpoint (resolved)
 * @param extendSchedule the caller accepts an lr jump at the resume step (`--extend-schedule`)
 * @param plain a resume without overrides: a run at its last step is completed, not refused
 */
export function checkResume(saved: RunConfig, config: RunConfig, step: number, extendSchedule: boolean, plain = false): string[] {
  const model = jsonDiff(saved.model, config.model, 'model');
  if (model.length > 0) {
    throw new ConfigError(
      '--resume',
      `the checkpoint at step ${step} holds a different model; these cannot change on resume:\n  ${model.join('\n  ')}\n` +
        `(start a new run to train another model)`,
    );
  }
  if (config.steps < step) {
    throw new ConfigError(
      'steps',
      `${config.steps} is below the checkpoint's step ${step}; a resumed run can only continue (set steps above ${step})`,
    );
  }
  if (config.steps === step && plain) {
    // Killed after its last checkpoint, before summary.json: resuming only completes the run.
    return [`the checkpoint is at the run's last step ${step}: nothing to train, writing the run's summary`];
  }
  if (config.steps === step) {
    throw new ConfigError(
      'steps',
      `the run is already complete at step ${step}; to train further, resume with --set steps=N (N > ${step})`,
    );
  }
  const before = createSchedule(saved.schedule)(step);
  const after = buildSchedule(config.schedule)(step);
  if (Math.abs(before - after) <= 1e-9) {
    // Asked to extend, but nothing moves: e.g. schedule.totalSteps is pinned in the run's config.
    return extendSchedule && config.schedule.kind !== 'constant' && config.schedule.totalSteps === saved.schedule.totalSteps
      ? [
          `--extend-schedule changes nothing: schedule.totalSteps stays ${config.schedule.totalSteps} in this run's config, ` +
            `so the lr stays at its final value; stretch it with --set schedule.totalSteps=${config.steps}`,
        ]
      : [];
  }
  const fmt = (x: number) => x.toFixed(4);
  if (!extendSchedule) {
    throw new ConfigError(
      'schedule',
      `this resume changes the lr factor at step ${step} from ${fmt(before)} to ${fmt(after)} ` +
        `(${saved.schedule.kind} over schedule.totalSteps ${saved.schedule.totalSteps} -> ${config.schedule.totalSteps}: ` +
        `the schedule would be stretched under the run). Pass --extend-schedule to accept that jump, or keep ` +
        `the old schedule with --set schedule.totalSteps=${saved.schedule.totalSteps} (the lr then stays at its final value)`,
    );
  }
  return [`extending the schedule: lr factor at step ${step} ${fmt(before)} -> ${fmt(after)} (--extend-schedule)`];
}
