/**
 * The layering of src/ (docs/ARCHITECTURE.md, "Layers") holds: dependency-cruiser with
 * .dependency-cruiser.cjs finds no upward import, no import between two parts of one layer and no
 * runtime import cycle (the same check as `npm run lint:deps`), and every folder and file directly under
 * src/ has its place in a layer.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const config = require('../../.dependency-cruiser.cjs') as {
  forbidden: { name: string; from: { path?: string } }[];
};

describe('layering', () => {
  it('dependency-cruiser finds no violation in src/', () => {
    const r = spawnSync(
      process.execPath,
      ['node_modules/.bin/depcruise', 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err-long'],
      {
        encoding: 'utf8',
        timeout: 110_000,
      },
    );
    expect(r.error).toBeUndefined();
    expect(r.status, `depcruise found violations:\n${r.stdout}${r.stderr}`).toBe(0);
  });

  it('every folder and file directly under src/ belongs to a layer', () => {
    const layers = config.forbidden.filter((rule) => rule.name.startsWith('layer-')).map((rule) => new RegExp(rule.from.path!));
    const unplaced = readdirSync('src', { withFileTypes: true })
      .filter((e) => e.isDirectory() || e.name.endsWith('.ts'))
      .map((e) => (e.isDirectory() ? `src/${e.name}/x.ts` : `src/${e.name}`))
      .filter((path) => !layers.some((re) => re.test(path)));
    expect(unplaced, 'add these to LAYERS in .dependency-cruiser.cjs').toEqual([]);
  });
});
