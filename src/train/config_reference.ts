/**
 * The config reference (docs/config.md), generated from the run config's zod schema: every field with
 * its type, default and description (each schema field's `.describe()`), so the document cannot drift
 * from the code. `npm run config-doc` writes it; a test fails when the committed file is stale.
 */
import { z } from 'zod';
import { RunConfigSchema } from './config.ts';

/** A JSON Schema node as z.toJSONSchema writes it (the parts the reference reads). */
interface Node {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  pattern?: string;
  properties?: Record<string, Node>;
  items?: Node | false;
  prefixItems?: Node[];
  anyOf?: Node[];
}

/** One row of the reference. */
export interface ConfigField {
  /** Dotted path; array items as `[]` (`optimizer.routing[].match`). */
  path: string;
  type: string;
  /** JSON text of the default, or '' when there is none (optional, or derived: see the description). */
  default: string;
  description: string;
}

const SAFE = Number.MAX_SAFE_INTEGER;

function bounds(n: Node): string {
  const lo =
    n.exclusiveMinimum !== undefined ? ['(', n.exclusiveMinimum] : n.minimum !== undefined && n.minimum > -SAFE ? ['[', n.minimum] : null;
  const hi =
    n.exclusiveMaximum !== undefined ? [')', n.exclusiveMaximum] : n.maximum !== undefined && n.maximum < SAFE ? [']', n.maximum] : null;
  if (lo && hi) return ` in ${lo[0]}${lo[1]}, ${hi[1]}${hi[0]}`;
  if (lo) return ` ${lo[0] === '(' ? '>' : '>='} ${lo[1]}`;
  if (hi) return ` ${hi[0] === ')' ? '<' : '<='} ${hi[1]}`;
  return '';
}

/** The type of a node as a reader would write it: 'integer >= 1', 'one of a, b', '[number, number]'. */
function typeText(n: Node): string {
  if (n.enum) return `one of ${n.enum.map((v) => `\`${String(v)}\``).join(', ')}`;
  if (n.anyOf) return n.anyOf.map(typeText).join(' or ');
  if (n.prefixItems) return `[${n.prefixItems.map(typeText).join(', ')}]`;
  if (n.type === 'array') return n.items && n.items.properties ? 'list of objects' : `list of ${n.items ? typeText(n.items) : 'values'}`;
  if (n.type === 'integer' || n.type === 'number') return `${n.type}${bounds(n)}`;
  if (n.type === 'string') return n.minLength ? 'non-empty string' : 'string';
  return Array.isArray(n.type) ? n.type.join(' | ') : (n.type ?? 'any');
}

function walk(n: Node, path: string, out: ConfigField[]): void {
  if (n.properties) {
    // A section's own description; nested objects also get a row ('quant.gptq': what the group is).
    if (path) out.push({ path, type: 'object', default: '', description: n.description ?? '' });
    for (const [key, child] of Object.entries(n.properties)) walk(child, path ? `${path}.${key}` : key, out);
    return;
  }
  out.push({
    path,
    type: typeText(n),
    default: n.default === undefined ? '' : JSON.stringify(n.default),
    description: n.description ?? '',
  });
  if (n.type === 'array' && n.items && n.items.properties) walk(n.items, `${path}[]`, out);
}

/**
 * Every field of a config schema, in schema order.
 * @example configFields().find((f) => f.path === 'model.norm') // { type: 'one of `rmsnorm`, ...', default: '"rmsnorm"', ... }
 */
export function configFields(schema: z.ZodType = RunConfigSchema): ConfigField[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Node;
  const out: ConfigField[] = [];
  walk(json, '', out);
  return out;
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n+/g, ' ');

/** docs/config.md: one table per top-level section, in schema order. */
export function configReference(schema: z.ZodType = RunConfigSchema): string {
  const fields = configFields(schema);
  const lines = [
    '# Config reference',
    '',
    'Every field of a run config with its type, default and meaning. A config file (`--config FILE`, JSON)',
    'holds any subset; `--set path=value` overrides one field (the value is JSON when it parses, else a string);',
    'everything else takes the default below. Unknown fields are errors naming the field and the valid ones.',
    '',
    'Generated from the zod schemas by `npm run config-doc` (src/train/config_reference.ts); a test fails when this',
    'file is stale. Back to the [README](../README.md).',
    '',
    '`configs/tiny.json` is the OSP recipe (Muon + SSNorm + EmbProj); `configs/tiny-adam.json` is the Adam +',
    'RMSNorm baseline of the same size (AdamW on every parameter through a routing rule).',
  ];
  let section = '';
  for (const f of fields) {
    const top = f.path.includes('.') || f.type === 'object' ? f.path.split('.')[0]! : '(top level)';
    if (top !== section) {
      section = top;
      lines.push('', `## ${top}`, '');
      if (f.type === 'object' && f.description) lines.push(f.description, '');
      lines.push('| field | type | default | description |', '|---|---|---|---|');
    }
    if (f.type === 'object' && f.path === top) continue;
    lines.push(`| \`${f.path}\` | ${cell(f.type)} | ${f.default ? `\`${cell(f.default)}\`` : '-'} | ${cell(f.description)} |`);
  }
  return `${lines.join('\n')}\n`;
}
