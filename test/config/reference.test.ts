/**
 * docs/config.md is generated from the zod schemas: it must be current, describe every field, and its
 * defaults must be the ones validation actually fills in (checked against resolveRunConfig({})).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configFields, configReference } from '../../src/train/config_reference.ts';
import { resolveRunConfig } from '../../src/train/config.ts';

function at(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

describe('the config reference (docs/config.md)', () => {
  it('is current: regenerate it with `npm run config-doc` after changing a schema', () => {
    expect(readFileSync('docs/config.md', 'utf8') === configReference(), 'docs/config.md is stale: run `npm run config-doc`').toBe(true);
  });

  it('describes every field', () => {
    const missing = configFields()
      .filter((f) => f.description.trim() === '')
      .map((f) => f.path);
    expect(missing).toEqual([]);
  });

  it('lists each default as validation fills it in, and every field of the resolved empty config', () => {
    const resolved = resolveRunConfig({});
    const fields = configFields();
    for (const f of fields.filter((x) => x.default !== '')) {
      expect([f.path, JSON.parse(f.default)]).toEqual([f.path, at(resolved, f.path)]);
    }
    // Every leaf of the resolved default config is documented (derived fields appear without a default).
    const leaves: string[] = [];
    const visit = (o: unknown, p: string) => {
      if (o !== null && typeof o === 'object' && !Array.isArray(o)) for (const [k, v] of Object.entries(o)) visit(v, p ? `${p}.${k}` : k);
      else leaves.push(p);
    };
    visit(resolved, '');
    const documented = new Set(fields.map((f) => f.path));
    expect(leaves.filter((l) => !documented.has(l))).toEqual([]);
  });
});
