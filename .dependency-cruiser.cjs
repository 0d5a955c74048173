/**
 * The layering of src/ (docs/ARCHITECTURE.md, "Layers"), checked by dependency-cruiser:
 * `npm run lint:deps`, and test/structure/layering.test.ts in `npm test`.
 *
 * LAYERS lists the layers top to bottom. A module may import its own folder and any layer below its
 * own, nothing else: not a layer above, and not another member of its own layer (members of one layer
 * are independent parts), so the folder graph has no cycles. A new top-level folder or file under src/
 * is forbidden to everything until it is placed here. Type-only imports count (tsPreCompilationDeps):
 * naming a type of a layer above is knowing it.
 */

/** @type {{ members: string[], why: string }[]} top to bottom; a member is a folder or a file (`.ts`) */
const LAYERS = [
  {
    members: ['cli', 'index.ts'],
    why: 'entry points: the osp command and the library API (index.ts); nothing imports them',
  },
  {
    members: ['sweep'],
    why: 'sweeps run trials (train) and report on them; the CLI calls them',
  },
  {
    members: ['eval'],
    why: 'osp eval / analyze / quant-eval read checkpoints (train, export); no sweep uses them',
  },
  {
    members: ['export'],
    why: 'export reads checkpoints (train/checkpoint.ts) and writes other formats; train must not depend on it',
  },
  {
    members: ['train'],
    why: "one run end to end: its config (assembled from the parts' sections), the trainer and its callbacks; the lowest layer that knows what a run is",
  },
  {
    members: ['metrics', 'quant'],
    why: 'measurements of a model (outliers, Hessian, quantized loss): they use model/optim/data, know no run',
  },
  {
    members: ['model', 'optim', 'data', 'backend'],
    why: 'independent parts: none knows another, a run, or a measurement of itself',
  },
  {
    members: ['ops'],
    why: 'fused ops and their kernel contracts (dispatch.ts); backends register kernels for them, ops never name a backend',
  },
  {
    members: ['io', 'utils'],
    why: 'file formats, locks, rng, workers, parseConfig: generic code that knows no model, run or op',
  },
  {
    members: ['errors.ts'],
    why: 'the error classes every layer throws; imports nothing of src',
  },
];

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The regex alternative of a member: `name/` for a folder, `name.ts$` for a file. */
const alt = (m) => (m.endsWith('.ts') ? `${escapeRegExp(m)}$` : `${m}/`);

const layerRules = LAYERS.map((layer, i) => {
  const below = LAYERS.slice(i + 1).flatMap((l) => l.members.map(alt));
  return {
    name: `layer-${layer.members.join('-').replace(/\.ts$/, '')}`,
    severity: 'error',
    comment:
      `${layer.members.length > 1 ? 'each of ' : ''}${layer.members.join(', ')} may import only ${below.length ? 'its own folder and the layers below' : 'its own folder'}` +
      ` (${
        LAYERS.slice(i + 1)
          .map((l) => l.members.join('|'))
          .join(' > ') || 'nothing of src'
      }): ${layer.why}`,
    // $1 is the importing member, so the own folder is allowed and the layer's other members are not.
    from: { path: `^src/(${layer.members.map(alt).join('|')})` },
    to: { path: '^src/', pathNot: `^src/(${['$1', ...below].join('|')})` },
  };
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'A cycle of runtime imports makes module initialisation order-dependent (ESM: a binding read before it ' +
        'is initialised) and the modules one unit. Cycles through a type-only import are erased at compile ' +
        "time and not counted here (model/config.ts <-> the norm/embedding registries name each other's types); " +
        'across folders the layer rules forbid those too.',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    ...layerRules,
  ],
  options: {
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
