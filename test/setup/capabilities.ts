/**
 * Vitest global setup: finds out once which optional parts this machine has (the native kernel
 * pack, OpenBLAS under it, a WebGPU adapter, rsvg-convert, PyTorch, a Slurm cluster), hands the answers to the test
 * processes through environment variables (see test/helpers/capabilities.ts), and at the end prints
 * one line per missing part: what was skipped and how to enable it.
 *
 * With OSP_REQUIRE_ALL=1 (CI sets it) a missing part fails the run before any test starts, so CI can
 * never pass by skipping. OSP_SKIP_NATIVE=1 / OSP_SKIP_WEBGPU=1 leave a part out on purpose.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CAPABILITIES, type Capability } from '../helpers/capabilities.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a probe in a child process (Dawn and the addon stay out of vitest's own process). */
function probe(script: string): { ok: boolean; detail: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
  const out = (r.stdout ?? '').trim().split('\n').at(-1) ?? '';
  if (r.status === 0 && out.startsWith('ok ')) return { ok: true, detail: out.slice(3) };
  const err = out.startsWith('no ') ? out.slice(3) : `${out} ${(r.stderr ?? '').trim().split('\n').at(-1) ?? ''}`.trim();
  return { ok: false, detail: err || `probe exited with ${r.status ?? r.signal}` };
}

const PROBES: Record<Capability, () => { ok: boolean; detail: string }> = {
  native: () =>
    probe(
      "import('./src/backend/native/index.ts').then(m => { const p = m.probeNative(); " +
        "console.log(p.available ? 'ok ' + p.detail : 'no ' + p.detail.split('\\n')[0]); process.exit(0); })",
    ),
  openblas: () =>
    probe(
      "import('./src/backend/native/addon.ts').then(m => { let a; try { a = m.loadNativeAddon(); } catch (e) { console.log('no ' + e.message.split('\\n')[0]); process.exit(0); } " +
        "const k = a.gemmKinds ? a.gemmKinds() : []; console.log(k.includes('openblas') ? 'ok ' + k.join(',') : 'no the kernel pack was built without OpenBLAS (gemms: ' + k.join(',') + ')'); process.exit(0); })",
    ),
  webgpu: () =>
    probe(
      "import('./src/backend/webgpu/index.ts').then(async m => { const p = await m.probeWebGPU(); " +
        "console.log(p.available ? 'ok ' + p.detail : 'no ' + p.detail); process.exit(0); })",
    ),
  rsvg: () => {
    const r = spawnSync('rsvg-convert', ['--version'], { encoding: 'utf8' });
    return r.status === 0 ? { ok: true, detail: r.stdout.trim() } : { ok: false, detail: 'rsvg-convert not found' };
  },
  torch: () => {
    const r = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return { ok: true, detail: `torch ${r.stdout.trim()}` };
    return {
      ok: false,
      detail: r.error ? `/usr/bin/python3: ${r.error.message}` : (r.stderr ?? '').trim().split('\n').at(-1) || `status ${r.status}`,
    };
  },
  slurm: () => {
    // A controller that answers and a node that can take work.
    const r = spawnSync('sinfo', ['-h', '-o', '%t'], { encoding: 'utf8', timeout: 20_000 });
    if (r.error) return { ok: false, detail: 'sinfo not found' };
    const states = (r.stdout ?? '').trim().split('\n').filter(Boolean);
    if (r.status !== 0) return { ok: false, detail: `sinfo failed: ${(r.stderr ?? '').trim().split('\n')[0]}` };
    return states.some((s) => /^(idle|mix|alloc)/.test(s))
      ? { ok: true, detail: `nodes: ${states.join(', ')}` }
      : { ok: false, detail: `no node can take work (states: ${states.join(', ') || 'none'})` };
  },
};

const missing: { cap: Capability; detail: string }[] = [];

export default function setup(): () => void {
  for (const cap of Object.keys(CAPABILITIES) as Capability[]) {
    const info = CAPABILITIES[cap];
    const env = `OSP_TEST_HAS_${cap.toUpperCase()}`;
    if (process.env[info.skipVar ?? ''] === '1') {
      process.env[env] = '0';
      missing.push({ cap, detail: `${info.skipVar}=1` });
      continue;
    }
    const r = PROBES[cap]();
    process.env[env] = r.ok ? '1' : '0';
    if (!r.ok) missing.push({ cap, detail: r.detail });
  }
  if (process.env.OSP_REQUIRE_ALL === '1' && missing.length > 0) {
    throw new Error(
      'OSP_REQUIRE_ALL=1 but optional parts are missing, so their tests would be skipped:\n' +
        missing.map(({ cap, detail }) => `  ${cap}: ${detail}\n    enable: ${CAPABILITIES[cap].enable}`).join('\n'),
    );
  }
  return () => {
    for (const { cap, detail } of missing) {
      const info = CAPABILITIES[cap];
      // The probe's own message may carry its fix too; the first sentence says what is missing.
      const what = detail.split(/\.\s/)[0];
      console.log(`skipped: ${info.tests} (${cap}: ${what}); to run them: ${info.enable}`);
    }
  };
}
