import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OspError } from '../../src/errors.ts';
import { acquireLock, LOCK_FILE, type DirLock } from '../../src/io/lock.ts';
import { tempDir } from '../helpers/scratch.ts';

// Locks are released after each test; tempDir's directories go only when the file ends (test/setup/scratch.ts).
const held: DirLock[] = [];
function take(dir: string, what: string, onStale?: (m: string) => void): DirLock {
  const lock = acquireLock(dir, what, onStale);
  held.push(lock);
  return lock;
}
afterEach(() => {
  for (const l of held.splice(0)) l.release();
});

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OspError);
    return e as Error;
  }
  throw new Error('expected an OspError, nothing was thrown');
}

/** The pid of a process that has certainly exited (spawnSync waits for it). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  expect(child.status).toBe(0);
  expect(() => process.kill(child.pid!, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  return child.pid!;
}

const exitListeners = () => process.listeners('exit').length;

describe('acquireLock', () => {
  it('writes { pid, host, started, what } and release removes it', () => {
    const dir = join(tempDir('osp-lock-'), 'not', 'yet');
    const before = exitListeners();
    const lock = take(dir, 'osp sweep lr');
    expect(lock.path).toBe(join(dir, LOCK_FILE));
    const info = JSON.parse(readFileSync(lock.path, 'utf8'));
    expect(info).toEqual({ pid: process.pid, host: hostname(), started: expect.any(String), what: 'osp sweep lr' });
    expect(Date.now() - Date.parse(info.started)).toBeLessThan(60_000);
    expect(exitListeners()).toBe(before + 1);
    lock.release();
    expect(existsSync(lock.path)).toBe(false);
    // The exit handler goes with the lock; a second release is harmless.
    expect(exitListeners()).toBe(before);
    lock.release();
    // Free again.
    take(dir, 'osp sweep lr').release();
  });

  it('a second acquire while held throws "already running" with the holder, and the lock survives', () => {
    const dir = tempDir('osp-lock-');
    const first = take(dir, 'osp sweep first');
    const text = readFileSync(first.path, 'utf8');
    let stale = 0;
    const e = thrown(() => acquireLock(dir, 'osp sweep second', () => stale++));
    expect(e.message).toMatch(/^already running: osp sweep first \(pid \d+, started \d{4}-\d\d-\d\dT[^)]+\); wait for it or stop it/);
    expect(e.message).toContain(`pid ${process.pid}`);
    expect(stale).toBe(0);
    expect(readFileSync(first.path, 'utf8')).toBe(text);
  });

  it('another live process counts as running, also when signalling it is not permitted (EPERM)', () => {
    // pid 1 (init) always exists.
    const dir = tempDir('osp-lock-');
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: hostname(), started: 'then', what: 'osp train x' }));
    expect(thrown(() => acquireLock(dir, 'me')).message).toContain('already running: osp train x (pid 1, started then)');
    // Another user's process: kill(pid, 0) fails with EPERM, which still means it exists.
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => {
      throw Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
    });
    try {
      expect(thrown(() => acquireLock(dir, 'me')).message).toContain('already running: osp train x');
      expect(kill).toHaveBeenCalledWith(1, 0);
    } finally {
      kill.mockRestore();
    }
    expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
  });

  it('clears a lock whose process is dead and says so through onStale', () => {
    const dir = tempDir('osp-lock-');
    const pid = deadPid();
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid, host: hostname(), started: '2024-01-01T00:00:00.000Z', what: 'osp sweep old' }),
    );
    const messages: string[] = [];
    const lock = take(dir, 'osp sweep new', (m) => messages.push(m));
    expect(messages).toEqual([
      `removed stale lock ${join(dir, LOCK_FILE)}: osp sweep old (pid ${pid}, started 2024-01-01T00:00:00.000Z) is no longer running`,
    ]);
    expect(JSON.parse(readFileSync(lock.path, 'utf8'))).toMatchObject({ pid: process.pid, what: 'osp sweep new' });
  });

  it.each([
    ['not JSON', '{"pid": 12'],
    ['empty', ''],
    ['no pid', JSON.stringify({ host: 'h', started: 's', what: 'w' })],
    ['a bad pid', JSON.stringify({ pid: -3, host: 'h' })],
  ])('clears a corrupt lock file (%s)', (_what, content) => {
    const dir = tempDir('osp-lock-');
    writeFileSync(join(dir, LOCK_FILE), content);
    const messages: string[] = [];
    const lock = take(dir, 'osp sweep new', (m) => messages.push(m));
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain(`removed corrupt lock ${join(dir, LOCK_FILE)}`);
    expect(JSON.parse(readFileSync(lock.path, 'utf8')).pid).toBe(process.pid);
  });

  it('clears a stale lock without a callback too', () => {
    const dir = tempDir('osp-lock-');
    writeFileSync(join(dir, LOCK_FILE), 'garbage');
    expect(JSON.parse(readFileSync(take(dir, 'x').path, 'utf8')).what).toBe('x');
  });

  it("another host's lock with a recent heartbeat is never cleared, and the message says how old it is", () => {
    const dir = tempDir('osp-lock-');
    // A dead pid: even a process that would be dead here may be alive on the other host.
    const content = JSON.stringify({ pid: deadPid(), host: 'other-host.cluster', started: 'yesterday', what: 'osp sweep big' });
    writeFileSync(join(dir, LOCK_FILE), content);
    let stale = 0;
    const e = thrown(() => acquireLock(dir, 'me', () => stale++));
    expect(e.message).toContain('locked by osp sweep big');
    expect(e.message).toMatch(/on host other-host\.cluster, whose last heartbeat was \d+ s ago \(stale after 600 s without one\)/);
    expect(e.message).toContain(`if that process is gone, remove ${join(dir, LOCK_FILE)}`);
    expect(stale).toBe(0);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toBe(content);
  });

  it("another host's lock without a heartbeat for longer than the stale time is cleared", () => {
    const dir = tempDir('osp-lock-');
    const path = join(dir, LOCK_FILE);
    writeFileSync(path, JSON.stringify({ pid: 4242, host: 'node17.cluster', started: 'earlier', what: 'osp sweep big' }));
    const old = new Date(Date.now() - 11 * 60_000);
    utimesSync(path, old, old);
    const messages: string[] = [];
    const lock = take(dir, 'me', (m) => messages.push(m));
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/osp sweep big .* on host node17\.cluster sent no heartbeat for 6\d\d s/);
    expect(JSON.parse(readFileSync(lock.path, 'utf8')).what).toBe('me');
  });

  it('the holder keeps its heartbeat: the lock file is touched while held, not after release', async () => {
    vi.stubEnv('OSP_LOCK_HEARTBEAT_SECONDS', '0.05');
    try {
      const dir = tempDir('osp-lock-');
      const lock = take(dir, 'beating');
      const old = new Date(Date.now() - 3_600_000);
      utimesSync(lock.path, old, old);
      await new Promise((r) => setTimeout(r, 200));
      expect(Date.now() - statSync(lock.path).mtimeMs).toBeLessThan(60_000);
      lock.release();
      expect(existsSync(lock.path)).toBe(false);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('a bad OSP_LOCK_STALE_SECONDS is an error naming it', () => {
    vi.stubEnv('OSP_LOCK_STALE_SECONDS', 'soon');
    try {
      const dir = tempDir('osp-lock-');
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', started: 's', what: 'w' }));
      expect(() => acquireLock(dir, 'me')).toThrow(/OSP_LOCK_STALE_SECONDS: expected a positive number of seconds, got 'soon'/);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("release does not remove someone else's lock", () => {
    const dir = tempDir('osp-lock-');
    const lock = take(dir, 'mine');
    // Ours was cleared (say as stale while this process was stopped) and another process took it.
    const theirs = JSON.stringify({ pid: 1, host: hostname(), started: 'now', what: 'theirs' });
    writeFileSync(lock.path, theirs);
    lock.release();
    expect(readFileSync(lock.path, 'utf8')).toBe(theirs);
    // Nor anything after ours is gone.
    rmSync(lock.path);
    expect(() => lock.release()).not.toThrow();
  });

  it('is released when the process exits without release()', () => {
    const dir = tempDir('osp-lock-');
    const script = `import { acquireLock } from ${JSON.stringify(join(process.cwd(), 'src/io/lock.ts'))};
      const l = acquireLock(${JSON.stringify(dir)}, 'child');
      const fs = await import('node:fs');
      console.log(fs.existsSync(l.path) ? 'held' : 'missing');`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('held');
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });
});
