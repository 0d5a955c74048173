#!/usr/bin/env node
/**
 * Builds the native backend's kernel pack (kernels/native) with node-gyp.
 *
 * Runs at `npm install` / `npm ci` (the package's install script) and as `npm run build:native`.
 * With the OpenBLAS headers (cblas.h) the addon links OpenBLAS and also carries the portable GEMM
 * (kernels/native/gemm.cc); without them it is built with the portable GEMM alone, which needs nothing
 * but a C++ compiler. Without a compiler the install still succeeds: this prints what is missing and the
 * command that fixes it, and the `native` backend reports itself unavailable until then.
 * With --strict (CI) a failed build is an error.
 *
 * OSP_NATIVE_BLAS=none builds the portable-only variant even where cblas.h exists (to test that build on a
 * machine with OpenBLAS); OSP_NATIVE_BLAS=openblas requires OpenBLAS (a missing cblas.h is an error).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const strict = process.argv.includes('--strict');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'kernels', 'native');
const addonPath = join(dir, 'build', 'Release', 'osp_native.node');
const HELP =
  'install a C++ compiler, make and python3 (Debian/Ubuntu: apt-get install g++ make python3; macOS: xcode-select --install), then run `npm run build:native`';
const FASTER =
  'installing OpenBLAS makes its matrix products faster (Debian/Ubuntu: apt-get install libopenblas-dev; macOS: brew install openblas; then `npm run build:native`)';

function give(why) {
  console.error(`osp-lab: the native backend was not built: ${why}.\nosp-lab: to use it, ${HELP}.`);
  process.exit(strict ? 1 : 0);
}

const want = process.env.OSP_NATIVE_BLAS ?? 'auto';
if (!['auto', 'openblas', 'none'].includes(want)) give(`OSP_NATIVE_BLAS must be auto, openblas or none, got '${want}'`);

const headers = [
  '/usr/include/cblas.h',
  '/usr/include/x86_64-linux-gnu/cblas.h',
  '/usr/include/aarch64-linux-gnu/cblas.h',
  '/usr/include/openblas/cblas.h',
  '/usr/local/include/cblas.h',
  '/opt/homebrew/opt/openblas/include/cblas.h',
  '/usr/local/opt/openblas/include/cblas.h',
];
const cblas = want === 'none' ? undefined : headers.find(existsSync);
if (want === 'openblas' && !cblas)
  give(`OSP_NATIVE_BLAS=openblas, but no cblas.h was found (looked in ${headers.join(', ')}); unset it to build the portable GEMM`);

// node-gyp: the one npm runs scripts with, else the copy bundled with npm next to this node.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) give('node-gyp not found (it ships with npm; looked in ' + candidates.join(', ') + ')');

/** node-gyp rebuild for one variant; returns the tail of its log on failure. */
function build(withOpenBLAS) {
  const args = [gyp, 'rebuild', `--osp_blas=${withOpenBLAS ? 'openblas' : 'none'}`];
  // Build against the headers of the node that runs this, when they are installed next to it (offline
  // machines); otherwise node-gyp fetches them.
  const prefix = join(dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const env = { ...process.env };
  if (withOpenBLAS) {
    const include = dirname(cblas);
    env.CXXFLAGS = `${process.env.CXXFLAGS ?? ''} -I${include}`.trim();
    // A prefix install (Homebrew, /usr/local) keeps the library next to its headers.
    if (include.endsWith('/include')) env.LDFLAGS = `${process.env.LDFLAGS ?? ''} -L${join(include, '..', 'lib')}`.trim();
  }
  const r = spawnSync(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env, encoding: 'utf8' });
  if (r.status === 0) return undefined;
  return `node-gyp failed (exit ${r.status}):\n${`${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-25).join('\n')}\n`;
}

if (cblas) {
  const failed = build(true);
  if (!failed) {
    console.log(
      `osp-lab: built the native kernel pack (${addonPath}) with OpenBLAS (${cblas}) and the portable GEMM; ` +
        'OpenBLAS is the default, OSP_NATIVE_GEMM=portable selects the other',
    );
    process.exit(0);
  }
  if (want === 'openblas') give(failed);
  console.error(`osp-lab: building against OpenBLAS (${cblas}) failed, building the portable GEMM instead:\n${failed}`);
}
const failed = build(false);
if (failed) give(failed);
const why = want === 'none' ? 'OSP_NATIVE_BLAS=none' : 'no cblas.h found';
console.log(`osp-lab: built the native kernel pack (${addonPath}) with its portable GEMM (${why}); ${FASTER}`);
