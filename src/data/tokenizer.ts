/** The tokenizers (src/data/tokenizers/): re-exported here for the modules that import this path. */
export * from './tokenizers/index.ts';
