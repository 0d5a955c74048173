/**
 * One sweep trial, run inside a worker thread (trial_worker.mjs): its own tfjs engine and backend,
 * the ordinary `train()` of the run directory, progress lines sent back to the main thread.
 */
import { train, type RunSummary } from '../train/run.ts';

export interface TrialRequest {
  /** Full run config (fresh trials). */
  config?: Record<string, unknown>;
  /** Run directory to resume (interrupted trials). */
  resume?: string;
}

export async function runTrial(req: TrialRequest, log: (line: string) => void): Promise<RunSummary> {
  return train({ config: req.config, resume: req.resume, log });
}
