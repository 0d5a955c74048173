/** Optimizers (AdamW, Muon, the routed pair) and learning-rate schedules. */
export type { Optimizer } from './optimizer.ts';
export { compilePattern } from './optimizer.ts';
export { AdamW, AdamWConfigSchema, type AdamWConfig } from './adamw.ts';
export { Muon, MuonConfigSchema, MUON_SCALES, type MuonConfig, type MuonScale } from './muon.ts';
export {
  assignOptimizers,
  createOptimizer,
  defaultRoute,
  OPTIMIZER_NAMES,
  OptimizerConfigSchema,
  RoutedOptimizer,
  RoutingRuleSchema,
  type OptimizerConfig,
  type OptimizerName,
  type RoutingRule,
} from './routing.ts';
export { createSchedule, lrFactor, SCHEDULE_KINDS, ScheduleConfigSchema, type ScheduleConfig } from './schedule.ts';
