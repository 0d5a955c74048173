/**
 * A lock file per directory, so that two `osp sweep` (or two trainings) never write into one
 * directory at once: they would interleave checkpoints and metrics and each resume the other's runs.
 *
 * `<dir>/.lock` holds `{ pid, host, started, what }`. A lock whose process is gone (killed, crashed,
 * machine rebooted) is stale and cleared, so a sweep interrupted by SIGKILL or a power cut can simply
 * be started again. On the host that wrote it, liveness is the pid. Across hosts (a shared file system:
 * a sweep submitted from a login node, trials on compute nodes) it is a heartbeat: the holder touches
 * the file's modification time every 30 s (OSP_LOCK_HEARTBEAT_SECONDS), and another host treats a lock
 * whose heartbeat is older than 10 minutes (OSP_LOCK_STALE_SECONDS) as stale. That assumes the hosts'
 * clocks agree to well within that (NTP), and that the file system makes O_EXCL creation atomic (NFSv3
 * and later do).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { OspError } from '../errors.ts';

/** What a lock file records about its holder. */
export interface LockInfo {
  pid: number;
  host: string;
  /** ISO 8601 time the lock was taken. */
  started: string;
  /** What holds it, e.g. `osp sweep lr`. */
  what: string;
}

/** A held lock. */
export interface DirLock {
  /** The lock file. */
  readonly path: string;
  /** Removes the lock file if it is still ours; idempotent. */
  release(): void;
}

/** Name of the lock file inside the locked directory. */
export const LOCK_FILE = '.lock';

/**
 * Grace period for an unparseable lock: 'wx' creates the file empty and the holder writes its JSON
 * right after, so a reader can catch it in between. A lock that stays unparseable is corrupt.
 */
const PARTIAL_WRITE_GRACE_MS = 100;

/** Seconds from the environment variable `name`, or `fallback`; a bad value is an error naming it. */
function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!(v > 0 && Number.isFinite(v))) throw new OspError(`${name}: expected a positive number of seconds, got '${raw}'`);
  return v;
}

/** How often a holder refreshes its lock's modification time. */
const heartbeatMs = () => seconds('OSP_LOCK_HEARTBEAT_SECONDS', 30) * 1000;
/** How old another host's heartbeat may be before its lock counts as stale. */
const staleMs = () => seconds('OSP_LOCK_STALE_SECONDS', 600) * 1000;

/**
 * Takes the lock on `dir` (created if missing) or throws an OspError saying who holds it.
 * A stale lock (its process is dead, or the file is corrupt) is removed first and `onStale` is told why.
 *
 * @param what the holder's description, shown to whoever finds the directory locked
 * @example
 *   const lock = acquireLock('runs/lr-sweep', 'osp sweep lr-sweep', (m) => console.warn(m));
 *   try { ... } finally { lock.release(); }
 */
export function acquireLock(dir: string, what: string, onStale?: (message: string) => void): DirLock {
  const path = join(dir, LOCK_FILE);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new OspError(`cannot create ${dir} for its lock: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const info: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString(), what };
  const text = `${JSON.stringify(info)}\n`;
  // Each failed attempt removed a stale lock or saw the holder let go; a few rounds settle any race.
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      // 'wx' = O_CREAT | O_EXCL: exactly one process creates the file, the others get EEXIST.
      fd = openSync(path, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new OspError(`cannot create lock ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      clearIfStale(path, onStale);
      continue;
    }
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      rmSync(path, { force: true });
      throw new OspError(`cannot write lock ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    closeSync(fd);
    return holdLock(path, text);
  }
  throw new OspError(`cannot take the lock ${path}: other processes keep taking and releasing it; try again`);
}

/** The handle of a lock we created with content `text`; also released when the process exits normally. */
function holdLock(path: string, text: string): DirLock {
  let released = false;
  // The heartbeat: other hosts cannot see our pid, only that the file keeps being touched.
  const heartbeat = setInterval(() => {
    try {
      if (readFileSync(path, 'utf8') === text) {
        const now = new Date();
        utimesSync(path, now, now);
      }
    } catch {
      // The file is gone or unreadable: the next acquirer judges it; a heartbeat never throws.
    }
  }, heartbeatMs());
  heartbeat.unref();
  const release = (): void => {
    if (released) return;
    released = true;
    clearInterval(heartbeat);
    process.off('exit', release);
    // Only our own lock: if ours was cleared as stale (say the process was stopped for a long time)
    // and someone else took the directory, their lock must stay.
    try {
      if (readFileSync(path, 'utf8') === text) rmSync(path, { force: true });
    } catch {
      // Gone already, or unreadable: nothing of ours to remove. Never throw from an exit handler;
      // a lock left behind by a failure here is stale (dead pid) and cleared by the next acquirer.
    }
  };
  // SIGKILL, a crash, or a signal without a handler skips 'exit'; the pid check covers those.
  process.on('exit', release);
  return { path, release };
}

/** Reads a lock file; undefined when it does not exist (any more). */
function readLock(path: string): { text: string } | { error: string } | undefined {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    return { error: `unreadable: ${code ?? (e as Error).message}` };
  }
}

function parseLock(text: string): LockInfo | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (!Number.isInteger(o.pid) || (o.pid as number) <= 0 || typeof o.host !== 'string') return undefined;
  return {
    pid: o.pid as number,
    host: o.host,
    started: typeof o.started === 'string' ? o.started : '?',
    what: typeof o.what === 'string' ? o.what : '?',
  };
}

/** Whether a process with this pid exists on this host. EPERM means it exists but is someone else's. */
function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // Anything but ESRCH ("no such process") is treated as alive: never steal a lock on a guess.
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Looks at an existing lock: throws if its holder is (or may be) running, removes it if it is stale.
 * Returns normally when the caller should try to create the lock again.
 */
function clearIfStale(path: string, onStale: ((message: string) => void) | undefined): void {
  let seen = readLock(path);
  if (seen === undefined) return; // released meanwhile
  let info = 'text' in seen ? parseLock(seen.text) : undefined;
  if (!info && 'text' in seen) {
    // Possibly a lock being written right now (see PARTIAL_WRITE_GRACE_MS): look again before judging.
    sleepSync(PARTIAL_WRITE_GRACE_MS);
    const again = readLock(path);
    if (again === undefined) return;
    seen = again;
    info = 'text' in seen ? parseLock(seen.text) : undefined;
  }
  let reason: string;
  if (info) {
    const holder = `${info.what} (pid ${info.pid}, started ${info.started})`;
    if (info.host !== hostname()) {
      let age: number;
      try {
        age = Date.now() - statSync(path).mtimeMs;
      } catch {
        return; // released meanwhile
      }
      if (age <= staleMs()) {
        throw new OspError(
          `${path}: locked by ${holder} on host ${info.host}, whose last heartbeat was ${Math.max(0, Math.round(age / 1000))} s ago ` +
            `(stale after ${Math.round(staleMs() / 1000)} s without one); wait for it, or if that process is gone, remove ${path}`,
        );
      }
      reason = `removed stale lock ${path}: ${holder} on host ${info.host} sent no heartbeat for ${Math.round(age / 1000)} s`;
    } else if (isAlive(info.pid)) {
      throw new OspError(`already running: ${holder}; wait for it or stop it (if pid ${info.pid} is something else, remove ${path})`);
    } else {
      reason = `removed stale lock ${path}: ${holder} is no longer running`;
    }
  } else {
    reason = `removed corrupt lock ${path} (${'error' in seen ? seen.error : `not a lock record: ${JSON.stringify(seen.text.slice(0, 60))}`})`;
  }
  // Remove only what we judged: if another process cleared it and took the lock in the meantime,
  // the file now holds their record and must stay (we then see it as live on the next attempt).
  const now = readLock(path);
  if (now === undefined) return;
  if ('text' in now && 'text' in seen && now.text !== seen.text) return;
  try {
    rmSync(path, { force: true });
  } catch (e) {
    throw new OspError(`cannot remove stale lock ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  onStale?.(reason);
}
