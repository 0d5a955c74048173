/**
 * Writes docs/config.md, the config reference, from the zod schemas (src/train/config_reference.ts).
 * Run after changing a config field: `npm run config-doc`. `--check` exits 1 when the file is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configReference } from '../src/train/config_reference.ts';

const path = new URL('../docs/config.md', import.meta.url);
const text = configReference();
if (process.argv.includes('--check')) {
  const current = readFileSync(path, 'utf8');
  if (current !== text) {
    console.error('docs/config.md is stale: run `npm run config-doc`');
    process.exit(1);
  }
  console.log('docs/config.md is up to date');
} else {
  writeFileSync(path, text);
  console.log(`wrote docs/config.md (${text.length} bytes)`);
}
