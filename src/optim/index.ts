/** Optimizers (the registry: AdamW, Muon, Lion; the routed optimizer over them) and learning-rate schedules. */
export type { GroupOptimizer, Optimizer, OptimizerModule } from './optimizer.ts';
export { OPTIMIZERS } from './registry.ts';
export { compilePattern } from './optimizer.ts';
export { AdamW, AdamWConfigSchema, type AdamWConfig } from './adamw.ts';
export { Muon, MuonConfigSchema, MUON_SCALES, type MuonConfig, type MuonScale } from './muon.ts';
export { Lion, LionConfigSchema, type LionConfig } from './lion.ts';
export {
  assignOptimizers,
  buildOptimizer,
  createOptimizer,
  defaultRoute,
  OPTIMIZER_NAMES,
  OptimizerConfigSchema,
  RoutedOptimizer,
  RoutingRuleSchema,
  type OptimizerConfig,
  type ModelRoute,
  type OptimizerName,
  type RoutableModel,
  type RoutingRule,
} from './routing.ts';
export { buildSchedule, createSchedule, lrFactor, SCHEDULE_KINDS, ScheduleConfigSchema, type ScheduleConfig } from './schedule.ts';
