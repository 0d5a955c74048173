/** Bad model configs give one ConfigError naming the field, the value and the valid choices. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { resolveModelConfig } from '../../src/model/config.ts';
import { NORMS } from '../../src/model/norms.ts';

function errorOf(input: unknown): ConfigError {
  try {
    resolveModelConfig(input);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(input)}`);
}

describe('model config', () => {
  it('fills documented defaults and derives sizes', () => {
    const c = resolveModelConfig({});
    expect(c).toMatchObject({
      vocabSize: 258,
      hiddenSize: 128,
      numLayers: 4,
      numHeads: 4,
      numKvHeads: 4,
      headDim: 32,
      intermediateSize: 352, // 8/3 * 128 = 341.3, rounded up to a multiple of 32
      norm: 'rmsnorm',
      embedding: 'plain',
    });
  });

  it('unknown norm lists the valid choices', () => {
    const e = errorOf({ norm: 'batchnorm' });
    expect(e.field).toBe('model.norm');
    expect(e.message).toBe(
      `model.norm: unknown value "batchnorm"; valid choices: ${Object.keys(NORMS)
        .map((k) => `'${k}'`)
        .join(', ')}`,
    );
  });

  it('unknown embedding lists the valid choices', () => {
    expect(errorOf({ embedding: 'rotary' }).message).toContain(`valid choices: 'plain', 'embproj'`);
  });

  it('unknown key names the key and lists the valid ones', () => {
    const e = errorOf({ hidden_size: 64 });
    expect(e.field).toBe('model.hidden_size');
    expect(e.message).toContain('valid keys here: vocabSize, hiddenSize');
  });

  it('wrong type names the field and what was found', () => {
    const e = errorOf({ numLayers: '4' });
    expect(e.field).toBe('model.numLayers');
    expect(e.message).toContain('found "4"');
  });

  it('hidden size not divisible by heads', () => {
    const e = errorOf({ hiddenSize: 100, numHeads: 3 });
    expect(e.field).toBe('model.numHeads');
    expect(e.message).toContain('hiddenSize 100 is not divisible by numHeads 3');
  });

  it('heads not a multiple of key/value heads', () => {
    expect(errorOf({ numHeads: 4, numKvHeads: 3 }).field).toBe('model.numKvHeads');
  });

  it('odd head width (RoPE rotates pairs)', () => {
    expect(errorOf({ hiddenSize: 12, numHeads: 4 }).field).toBe('model.headDim');
  });
});
