/**
 * The tree is lint-clean and formatted (the same checks as `npm run lint`): ESLint with eslint.config.js
 * (@eslint/js + typescript-eslint recommended) reports nothing, and Prettier with .prettierrc.json finds
 * no file that it would reformat. On failure the message lists each finding / each unformatted file;
 * `npx eslint . --fix` and `npx prettier --write .` fix most of them.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function run(bin: string, args: string[]) {
  const r = spawnSync(process.execPath, [`node_modules/.bin/${bin}`, ...args], { encoding: 'utf8', timeout: 110_000 });
  expect(r.error).toBeUndefined();
  return r;
}

describe('lint', () => {
  it('eslint finds nothing', () => {
    const r = run('eslint', ['.', '--max-warnings', '0']);
    expect(r.status, `eslint found problems (npx eslint . --fix fixes some):\n${r.stdout}${r.stderr}`).toBe(0);
  });

  it('prettier finds every file formatted', () => {
    const r = run('prettier', ['--list-different', '.']);
    expect(r.status, `prettier would reformat these files (npx prettier --write .):\n${r.stdout}${r.stderr}`).toBe(0);
  });
});
