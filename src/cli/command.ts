/** One `osp` subcommand: its options and help text, and what it runs (src/cli/commands/*.ts). */
import type { ParseArgsConfig } from 'node:util';

export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  help: Record<string, string>;
  /** Runs the command; a number is the exit status (default 0). */
  run(values: Record<string, unknown>, positionals: string[]): Promise<void | number>;
}
