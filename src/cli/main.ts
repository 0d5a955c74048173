/**
 * The `osp` command. Thin: parse arguments, validate, call the library, print. Errors that osp-lab
 * raises on purpose (OspError) print as one line and exit with status 2; anything else is a bug and
 * prints its stack. Each command lives in src/cli/commands/; this file dispatches and formats help.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { OspError } from '../errors.ts';
import type { Command } from './command.ts';
import { analyze } from './commands/analyze.ts';
import { data } from './commands/data.ts';
import { evalCommand } from './commands/eval.ts';
import { exportCommand } from './commands/export.ts';
import { quantEvalCommand } from './commands/quant_eval.ts';
import { sweep } from './commands/sweep.ts';
import { train } from './commands/train.ts';

export type { Command } from './command.ts';

const COMMANDS: Record<string, Command> = {
  train,
  eval: evalCommand,
  sweep,
  export: exportCommand,
  'quant-eval': quantEvalCommand,
  analyze,
  data,
};

function usage(): string {
  const lines = ['usage: osp <command> [options]', '', 'commands:'];
  const cols = Math.max(40, process.stdout.columns || 80);
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  for (const [name, c] of Object.entries(COMMANDS)) {
    wrap(c.summary, cols - width - 4).forEach((l, i) =>
      lines.push(i === 0 ? `  ${name.padEnd(width)}  ${l}` : `${' '.repeat(width + 4)}${l}`),
    );
  }
  lines.push('', "'osp <command> --help': a command's options; 'osp --version': the version");
  return lines.join('\n');
}

/**
 * A command's usage and option list, word-wrapped to the terminal (80 columns when not a terminal):
 * usage lines continue under the command, option descriptions under their own column.
 */
export function commandHelp(c: Command, columns = process.stdout.columns || 80): string {
  const cols = Math.max(40, columns);
  // Keys longer than the column stand on their own line, their description below.
  const width = Math.min(20, Math.max(...Object.keys(c.help).map((k) => k.length)));
  const indent = width + 4;
  const lines = wrap(c.usage, cols - 9).map((l, i) => (i === 0 ? `usage: ${l}` : `         ${l}`));
  lines.push('');
  for (const [k, d] of Object.entries(c.help)) {
    const text = wrap(d, cols - indent).map((l) => `${' '.repeat(indent)}${l}`);
    if (k.length <= width) text[0] = `  ${k.padEnd(width)}  ${text[0]!.trimStart()}`;
    else lines.push(`  ${k}`);
    lines.push(...text);
  }
  return lines.join('\n');
}

/** Greedy word wrap to at most `width` characters per line (a longer word stands alone). */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  out.push(line);
  return out;
}

/** osp-lab's version, from its package.json. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** node:util's parse errors, reworded: an unknown option lists the valid ones. */
function parseErrorMessage(err: Error & { code?: string }, c: Command): string {
  const unknown = /Unknown option '([^']+)'/.exec(err.message);
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
    const valid = Object.entries(c.options).map(([k, o]) => `--${k}${o.type === 'string' ? ' VALUE' : ''}`);
    return `unknown option '${unknown[1]}'; valid options: ${valid.join(', ')}`;
  }
  return err.message;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  if (name === '--version' || name === '-V') {
    console.log(`osp-lab ${version()}`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`osp: unknown command '${name}'; valid commands: ${Object.keys(COMMANDS).join(', ')}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(commandHelp(command));
    return 0;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    return (await command.run(values as Record<string, unknown>, positionals)) ?? 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof OspError) {
      console.error(`osp ${name}: ${err.message}`);
      return 2;
    }
    if (err.code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`osp ${name}: ${parseErrorMessage(err, command)}`);
      return 2;
    }
    throw e;
  }
}
