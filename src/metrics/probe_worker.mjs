// Worker-thread entry of the Hessian probe: registers tsx (the worker does not inherit the main
// thread's loader), then exposes runProbe over comlink.
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter.js';

register();
const { runProbe } = await import('./probe.ts');
Comlink.expose({ runProbe }, nodeEndpoint(parentPort));
