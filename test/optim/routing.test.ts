import * as tf from '@tensorflow/tfjs';
import { startBackend } from '../../src/backend/index.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { EMBEDDINGS } from '../../src/model/embeddings.ts';
import { createModel } from '../../src/model/transformer.ts';
import { compilePattern, createOptimizer, OPTIMIZER_NAMES, type RoutableModel } from '../../src/optim/index.ts';

beforeAll(async () => {
  await startBackend('cpu');
});

const d = 16;
const ffn = 24;
const vocab = 40;

/** A 2-layer OSP Llama's parameters (HF names, PyTorch [out, in] layout) and where each should go. */
function llamaShapes(): [name: string, shape: number[], expected: 'muon' | 'adamw'][] {
  const out: [string, number[], 'muon' | 'adamw'][] = [
    ['model.embed_tokens.weight', [vocab, d], 'adamw'],
    ['model.embed_proj.weight', [d, d], 'muon'],
    ['model.embed_proj.bias', [d], 'adamw'],
  ];
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    out.push(
      [`${p}.input_layernorm.weight`, [1], 'adamw'], // SSNorm: one scalar gain
      [`${p}.self_attn.q_proj.weight`, [d, d], 'muon'],
      [`${p}.self_attn.k_proj.weight`, [d / 2, d], 'muon'],
      [`${p}.self_attn.v_proj.weight`, [d / 2, d], 'muon'],
      [`${p}.self_attn.o_proj.weight`, [d, d], 'muon'],
      [`${p}.self_attn.q_proj.bias`, [d], 'adamw'],
      [`${p}.post_attention_layernorm.weight`, [d], 'adamw'],
      [`${p}.post_attention_layernorm.extra`, [2, d], 'adamw'], // a 2-D norm parameter still goes to adamw
      [`${p}.mlp.gate_proj.weight`, [ffn, d], 'muon'],
      [`${p}.mlp.up_proj.weight`, [ffn, d], 'muon'],
      [`${p}.mlp.down_proj.weight`, [d, ffn], 'muon'],
    );
  }
  out.push(
    ['model.norm.weight', [d], 'adamw'],
    ['model.head_proj.weight', [d, d], 'muon'],
    ['lm_head.weight', [vocab, d], 'adamw'],
    ['model.logit_scale', [], 'adamw'],
  );
  return out;
}

let counter = 0;
function makeParams(seed = 0): Map<string, tf.Variable> {
  return new Map(
    llamaShapes().map(([name, shape]) => [
      name,
      // tfjs variable names are process-global, so they get unique names; the map key is the HF name.
      tf.variable(tf.randomNormal(shape, 0, 0.1, 'float32', seed + counter), true, `routing_test_${counter++}`),
    ]),
  );
}

const disposeAll = (m: Map<string, tf.Tensor>) => tf.dispose([...m.values()]);

/** The parameters with EmbProj's default rules, as an OSP Transformer hands them to createOptimizer. */
const osp = (params: Map<string, tf.Variable>): RoutableModel => ({ params, defaultRouting: EMBEDDINGS.embproj.defaultRouting });

describe('compilePattern', () => {
  it("'*' spans dots, '?' is one character, '.' is literal, /.../ is a regex", () => {
    expect(compilePattern('*norm*')('model.layers.3.input_layernorm.weight')).toBe(true);
    expect(compilePattern('model.layers.*.mlp.*')('model.layers.10.mlp.up_proj.weight')).toBe(true);
    expect(compilePattern('model.layers.?.mlp.*')('model.layers.10.mlp.up_proj.weight')).toBe(false);
    expect(compilePattern('model.norm.weight')('modelXnorm.weight')).toBe(false);
    expect(compilePattern('lm_head.weight')('lm_head.weight.extra')).toBe(false); // globs are anchored
    expect(compilePattern('/q_proj\\.(weight|bias)$/')('model.layers.0.self_attn.q_proj.bias')).toBe(true);
  });
});

describe('createOptimizer routing', () => {
  it('default rule: block matrices and EmbProj -> muon; embedding, head, norms, biases, scalars -> adamw', () => {
    const params = makeParams();
    const opt = createOptimizer({}, osp(params));
    for (const [name, , expected] of llamaShapes()) expect([name, opt.assignment.get(name)]).toEqual([name, expected]);
    expect(opt.config.routing).toEqual([]);
    expect(opt.group('muon').config.lr).toBe(1e-3);
    expect(opt.group('adamw').config.lr).toBe(3e-4);
    // An already-parsed config goes through unchanged.
    const again = createOptimizer(opt.config, osp(params));
    expect(again.config).toEqual(opt.config);
    expect(() => opt.step(params, new Map(), Number.NaN)).toThrow(/lrFactor must be a finite number/);
    again.dispose();
    opt.dispose();
    disposeAll(params);
  });

  it('user rules come first, first match wins', () => {
    const params = makeParams();
    const opt = createOptimizer(
      {
        muon: { lr: 0.02, scale: 'keller' },
        routing: [
          { match: 'lm_head.weight', optimizer: 'muon' },
          { match: '/layers\\.1\\.self_attn\\.q_proj\\.weight$/', optimizer: 'adamw' },
          { match: 'model.layers.*.self_attn.*_proj.weight', optimizer: 'muon' }, // q of layer 1 already taken
          { match: 'model.layers.0.mlp.*', optimizer: 'adamw' },
        ],
      },
      osp(params),
    );
    const expected = new Map(llamaShapes().map(([n, , e]) => [n, e]));
    expected.set('lm_head.weight', 'muon');
    expected.set('model.layers.1.self_attn.q_proj.weight', 'adamw');
    for (const p of ['gate', 'up', 'down']) expected.set(`model.layers.0.mlp.${p}_proj.weight`, 'adamw');
    expect(new Map(opt.assignment)).toEqual(expected);
    expect(opt.group('muon').config).toMatchObject({ lr: 0.02, scale: 'keller' });
    opt.dispose();
    disposeAll(params);
  });

  it('rejects a rule sending a non-2-D parameter to muon, naming it and its shape', () => {
    const params = makeParams();
    const make = () => createOptimizer({ routing: [{ match: '*norm*', optimizer: 'muon' }] }, osp(params));
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(/optimizer\.routing\.0: .*'model\.layers\.0\.input_layernorm\.weight' \(shape \[1\]\) to muon/);
    disposeAll(params);
  });

  it('rejects a rule that matches no parameter, listing some names', () => {
    const params = makeParams();
    const make = () => createOptimizer({ routing: [{ match: 'model.layer.*', optimizer: 'adamw' }] }, osp(params));
    expect(make).toThrow(
      /optimizer\.routing\.0\.match: 'model\.layer\.\*' matches no parameter; names look like 'model\.embed_tokens\.weight'/,
    );
    disposeAll(params);
  });

  it('rejects an unknown optimizer name (listing the valid ones) and unknown keys', () => {
    const params = makeParams();
    const bad = (config: unknown) => () => createOptimizer(config, osp(params));
    const names = OPTIMIZER_NAMES;
    expect(bad({ routing: [{ match: '*', optimizer: 'sgd' }] })).toThrow(
      `optimizer.routing.0.optimizer: unknown value "sgd"; valid choices: ${names.map((n) => `'${n}'`).join(', ')}`,
    );
    expect(bad({ adam: {} })).toThrow(`optimizer.adam: unknown key; valid keys here: ${names.join(', ')}, routing`);
    expect(bad({ muon: { lrr: 1 } })).toThrow(/optimizer\.muon\.lrr: unknown key/);
    expect(bad({ routing: [{ match: '*', optimizer: 'adamw', lr: 1 }] })).toThrow(/optimizer\.routing\.0\.lr: unknown key/);
    expect(bad({ routing: [{ match: '/[/', optimizer: 'adamw' }] })).toThrow(/optimizer\.routing\.0\.match: invalid pattern/);
    disposeAll(params);
  });
});

describe('RoutedOptimizer', () => {
  const grads = (params: Map<string, tf.Variable>, seed: number) =>
    new Map([...params].map(([n, p], i) => [n, tf.randomNormal(p.shape, 0, 1, 'float32', seed * 1000 + i)]));

  it('routes steps and state: each parameter gets its optimizer state, and only the given grads move', () => {
    const params = makeParams(1);
    const opt = createOptimizer({}, osp(params));
    const state = opt.stateDict();
    const expectedKeys = llamaShapes().flatMap(([n, , e]) =>
      e === 'muon' ? [`muon/${n}/momentum`] : [`adamw/${n}/exp_avg`, `adamw/${n}/exp_avg_sq`, `adamw/${n}/step`],
    );
    expect([...state.keys()].sort()).toEqual(expectedKeys.sort());
    disposeAll(state);
    const g = grads(params, 1);
    const partial = new Map([...g].filter(([n]) => !n.startsWith('model.layers.1.')));
    const before = new Map([...params].map(([n, p]) => [n, Array.from(p.dataSync())]));
    opt.step(params, partial, 1);
    for (const [n, p] of params) {
      const moved = Array.from(p.dataSync()).some((v, i) => v !== before.get(n)![i]);
      expect([n, moved]).toEqual([n, !n.startsWith('model.layers.1.')]);
    }
    expect(() => opt.step(params, new Map([['nope', g.get('lm_head.weight')!]]), 1)).toThrow(/unknown parameter 'nope'/);
    disposeAll(g);
    opt.dispose();
    disposeAll(params);
  });

  it('stateDict/loadStateDict round trip is bit-identical; memory stays flat', () => {
    const a = makeParams(2);
    const b = new Map([...a].map(([n, p]) => [n, tf.variable(p.clone(), true, `routing_test_${counter++}`)]));
    const config = { muon: { lr: 0.01 }, adamw: { lr: 0.01 } };
    const optA = createOptimizer(config, osp(a));
    const counts: number[] = [];
    for (let s = 0; s < 5; s++) {
      const g = grads(a, s);
      optA.step(a, g, 1 - s / 10);
      disposeAll(g);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[4]).toBe(counts[1]);
    for (const [n, p] of b) p.assign(a.get(n)!);
    const optB = createOptimizer(config, osp(b));
    const state = optA.stateDict();
    optB.loadStateDict(state);
    disposeAll(state);
    const g = grads(a, 99);
    optA.step(a, g, 0.5);
    optB.step(b, g, 0.5);
    for (const [n, p] of a) expect([n, Array.from(b.get(n)!.dataSync())]).toEqual([n, Array.from(p.dataSync())]);
    // A key with neither prefix is reported as unknown, before anything is loaded.
    const bad = optA.stateDict().set('sgd/x/momentum', tf.zeros([1]));
    expect(() => optB.loadStateDict(bad)).toThrow(/unknown: sgd\/x\/momentum/);
    disposeAll(bad);
    disposeAll(g);
    optA.dispose();
    optB.dispose();
    disposeAll(a);
    disposeAll(b);
  });
});

describe("routing: the model's default rules and the groups", () => {
  it("an EmbProj model's own rules send its projections to Muon; the bare parameter map falls to the generic rule", () => {
    const model = createModel({ hiddenSize: 16, numLayers: 1, numHeads: 2, vocabSize: 40, embedding: 'embproj' }, { seed: 0 });
    const withRules = createOptimizer({}, model);
    const bare = createOptimizer({}, { params: model.params });
    for (const name of ['model.embed_proj.weight', 'model.head_proj.weight']) {
      expect([name, withRules.assignment.get(name)]).toEqual([name, 'muon']);
      expect([name, bare.assignment.get(name)]).toEqual([name, 'adamw']);
    }
    // A user rule still comes first.
    const user = createOptimizer({ routing: [{ match: 'model.head_proj.weight', optimizer: 'adamw' }] }, model);
    expect(user.assignment.get('model.head_proj.weight')).toBe('adamw');
    expect(user.assignment.get('model.embed_proj.weight')).toBe('muon');
    for (const o of [withRules, bare, user]) o.dispose();
    model.dispose();
  });

  it('has a group only for an optimizer that owns parameters, in registry order', () => {
    const params = makeParams(3);
    const all = createOptimizer({ routing: [{ match: '*', optimizer: 'adamw' }] }, osp(params));
    expect([...all.groups.keys()]).toEqual(['adamw']);
    expect(() => all.group('muon')).toThrow(/no parameter is routed to muon/);
    const both = createOptimizer({}, osp(params));
    expect([...both.groups.keys()]).toEqual(['adamw', 'muon']);
    all.dispose();
    both.dispose();
    disposeAll(params);
  });

  it('refuses a model rule that names an unregistered optimizer or sends a vector to Muon', () => {
    const params = makeParams(4);
    expect(() => createOptimizer({}, { params, defaultRouting: [{ match: 'lm_head.weight', optimizer: 'sgd' }] })).toThrow(
      `names optimizer 'sgd', which is not registered (${OPTIMIZER_NAMES.join(', ')})`,
    );
    expect(() => createOptimizer({}, { params, defaultRouting: [{ match: 'model.norm.weight', optimizer: 'muon' }] })).toThrow(
      /sends 'model.norm.weight' \(shape \[16\]\) to muon, which only updates 2-D matrices/,
    );
    disposeAll(params);
  });
});
