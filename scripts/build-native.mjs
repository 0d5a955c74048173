#!/usr/bin/env node
/**
 * Builds the native backend's kernel pack (kernels/native) with node-gyp.
 *
 * Runs at `npm install` / `npm ci` (the package's install script) and as `npm run build:native`.
 * Without the OpenBLAS headers or a compiler the install still succeeds: this prints what is missing
 * and the command that fixes it, and the `native` backend reports itself unavailable until then.
 * With --strict (CI) a failed build is an error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const strict = process.argv.includes('--strict');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'kernels', 'native');
const HELP =
  'install the OpenBLAS development headers and a C++ compiler (Debian/Ubuntu: apt-get install libopenblas-dev g++ make python3; ' +
  'macOS: brew install openblas), then run `npm run build:native`';

function give(why) {
  console.error(`osp-lab: the native backend was not built: ${why}.\nosp-lab: to use it, ${HELP}.`);
  process.exit(strict ? 1 : 0);
}

const headers = ['/usr/include/cblas.h', '/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h', '/usr/local/include/cblas.h', '/opt/homebrew/opt/openblas/include/cblas.h', '/usr/local/opt/openblas/include/cblas.h'];
const cblas = headers.find(existsSync);
if (!cblas) give('no cblas.h found (looked in ' + headers.join(', ') + ')');

// node-gyp: the one npm runs scripts with, else the copy bundled with npm next to this node.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) give('node-gyp not found (it ships with npm; looked in ' + candidates.join(', ') + ')');

const args = [gyp, 'rebuild'];
// Build against the headers of the node that runs this, when they are installed next to it (offline
// machines); otherwise node-gyp fetches them.
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const include = dirname(cblas);
const env = { ...process.env, CXXFLAGS: `${process.env.CXXFLAGS ?? ''} -I${include}`.trim() };
// A prefix install (Homebrew, /usr/local) keeps the library next to its headers.
if (include.endsWith('/include')) env.LDFLAGS = `${process.env.LDFLAGS ?? ''} -L${join(include, '..', 'lib')}`.trim();
const r = spawnSync(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env, encoding: 'utf8' });
if (r.status !== 0) {
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-25).join('\n');
  give(`node-gyp failed (exit ${r.status}):\n${log}\n`);
}
console.log(`osp-lab: built the native kernel pack (${join(dir, 'build', 'Release', 'osp_native.node')}) against ${cblas}`);
