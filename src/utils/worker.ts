/**
 * A worker thread driven through comlink: spawn it, call its exposed functions as async methods,
 * close it (release the proxy and terminate, or Node will not exit). Worker entries are small .mjs
 * files that register tsx and expose a TypeScript module (see src/metrics/probe_worker.mjs).
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeAdapter from 'comlink/dist/umd/node-adapter.js';

// The UMD adapter's CommonJS export is the function itself; TypeScript types it as an ES default.
const nodeEndpoint = nodeAdapter as unknown as (typeof nodeAdapter)['default'];

export interface WorkerHandle<T> {
  remote: Comlink.Remote<T>;
  close(): Promise<void>;
}

export function spawnWorker<T>(entry: URL): WorkerHandle<T> {
  const worker = new Worker(entry);
  const remote = Comlink.wrap<T>(nodeEndpoint(worker));
  return {
    remote,
    async close() {
      remote[Comlink.releaseProxy]();
      await worker.terminate();
    },
  };
}
