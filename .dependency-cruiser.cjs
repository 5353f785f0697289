/**
 * Meridian's architecture rules, checked by `npm test` (npm run check:deps):
 * no import cycles, not even of types, and folders depend downward only.
 * Layers, lowest first: net, observability -> config -> geo, health -> routing
 * -> proxy, dns -> store -> acme, rollout -> admin -> main, lifecycle, cluster, demo, cli.
 */
const LAYERS = [
  ['net', 'observability'],
  ['config'],
  ['geo', 'health'],
  ['routing'],
  ['proxy', 'dns'],
  ['store'],
  ['acme', 'rollout'],
  ['admin'],
  ['demo', 'main.ts', 'lifecycle.ts', 'cluster', 'cli', 'cli.ts'],
];

/** Folders a layer must not import: every folder of the layers above it. */
function upward(index) {
  return LAYERS.slice(index + 1).flat();
}

const folder = (names) => `^src/(${names.map((n) => n.replace('.', '\\.')).join('|')})`;

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'An import cycle, even of types only: the graph must be a tree of layers.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...LAYERS.slice(0, -1).flatMap((layer, index) =>
      layer.map((name) => ({
        name: `${name.replace('.ts', '')}-depends-downward`,
        comment: `src/${name} may import only from the layers below it.`,
        severity: 'error',
        from: { path: folder([name]) },
        to: { path: folder(upward(index)) },
      })),
    ),
    ...[
      ['net', 'observability'],
      ['geo', 'health'],
      ['proxy', 'dns'],
    ].flatMap(([a, b]) => [
      { name: `${a}-not-${b}`, comment: 'Folders of one layer do not import each other.', severity: 'error', from: { path: folder([a]) }, to: { path: folder([b]) } },
      { name: `${b}-not-${a}`, comment: 'Folders of one layer do not import each other.', severity: 'error', from: { path: folder([b]) }, to: { path: folder([a]) } },
    ]),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
