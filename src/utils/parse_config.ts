/**
 * Turns zod validation failures into ConfigErrors that name the field, what was found and what is
 * valid. Every component's config is a zod schema with per-field defaults; this is the one place
 * that validates them, so all config errors read the same.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.ts';

/** Walks `schema` along `path` (through objects, defaults, optionals) to list the keys valid there. */
function keysAt(schema: z.ZodType, path: PropertyKey[]): string[] | undefined {
  let s: z.ZodType | undefined = schema;
  for (const key of [...path, null]) {
    // Unwrap defaults/optionals/pipes until an object (or something we cannot descend) remains.
    for (let guard = 0; s && guard < 10; guard++) {
      const def: { type: string; innerType?: z.ZodType; in?: z.ZodType } = (
        s as unknown as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } }
      ).def;
      if (def.innerType) s = def.innerType;
      else if (def.type === 'pipe' && def.in) s = def.in;
      else break;
    }
    if (!(s instanceof z.ZodObject)) return undefined;
    if (key === null) return Object.keys(s.shape);
    s = (s.shape as Record<string, z.ZodType>)[String(key)];
  }
  return undefined;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let v: unknown = input;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/**
 * Parses `input` with `schema`; on failure throws a ConfigError for the first problem, e.g.
 * `model.norm: unknown value "batchnorm"; valid choices: 'rmsnorm', 'ssnorm', ...`.
 * @param prefix dotted path of `input` inside the whole config (e.g. `model`), used in messages
 */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, prefix = ''): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const join = (p: PropertyKey[]) => [prefix, ...p.map(String)].filter((s) => s !== '').join('.') || '(root)';
  if (issue.code === 'unrecognized_keys') {
    const valid = keysAt(schema, issue.path) ?? [];
    const field = join([...issue.path, issue.keys[0]!]);
    throw new ConfigError(field, `unknown key; valid keys here: ${valid.join(', ')}`);
  }
  const found = valueAt(input, issue.path);
  if (issue.code === 'invalid_value') {
    const choices = (issue.values as unknown[]).map((v) => `'${String(v)}'`).join(', ');
    throw new ConfigError(join(issue.path), `unknown value ${describe(found)}; valid choices: ${choices}`);
  }
  throw new ConfigError(join(issue.path), `${issue.message} (found ${describe(found)})`);
}

/** An integer field with a lower bound, the most common config field. */
export const zInt = (min: number) => z.number().int().min(min);
