#!/usr/bin/env node
// The `osp` command: runs the TypeScript sources directly through tsx (no build step).
import { register } from 'tsx/esm/api';

// `osp ... | head` closes the pipe early: stop quietly, as other command-line tools do.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
