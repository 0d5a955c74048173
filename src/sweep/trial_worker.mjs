// Worker-thread entry of a sweep trial: registers tsx (workers do not inherit the main thread's
// loader), then exposes runTrial over comlink.
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter.js';

register();
const { runTrial } = await import('./trial.ts');
Comlink.expose({ runTrial }, nodeEndpoint(parentPort));
