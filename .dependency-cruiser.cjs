// plugforge's import rules (docs/architecture.md, "Folders and what they may import"), checked by
// `npx depcruise src web` (part of `npm run lint`).
//
// Every folder of src/ is a node, and so are `config` (src/config.ts, read and sliced at the top),
// `shared` (every other module at the top of src/) and `web` (the browser page in web/). The
// layers, lowest first: a node imports only the nodes it names, and only from layers below its
// own, so the drawing of the code has no arrow that climbs back up. Type-only imports count.
const { readdirSync } = require('node:fs');
const path = require('node:path');

/** The matrix, written once: each layer maps its nodes to the nodes they may import. */
// Kept one line a folder, as the table it is, by the comment below.
// prettier-ignore
const LAYERS = [
  { contract: [], errors: [] },
  { shared: ['contract', 'errors'] },
  {
    archive: ['contract', 'errors', 'shared'],
    redis: ['contract', 'errors', 'shared'],
    runtime: ['contract', 'errors', 'shared'],
    store: ['contract', 'errors', 'shared'],
    verify: ['contract', 'errors', 'shared'],
  },
  {
    host: ['contract', 'errors', 'shared', 'archive', 'verify'],
    bundle: ['contract', 'errors', 'shared', 'archive'],
    images: ['contract', 'errors', 'shared', 'archive', 'runtime', 'verify'],
  },
  { builds: ['contract', 'errors', 'shared', 'host', 'redis', 'store'] },
  {
    provenance: ['contract', 'errors', 'shared', 'builds', 'store', 'verify'],
    queue: ['contract', 'errors', 'shared', 'builds', 'redis'],
  },
  { config: ['contract', 'errors', 'shared', 'archive', 'builds', 'images', 'store'] },
  {
    api: ['contract', 'errors', 'shared', 'archive', 'builds', 'bundle', 'config', 'host', 'images', 'provenance', 'queue', 'redis', 'store', 'verify'],
    worker: ['contract', 'errors', 'shared', 'archive', 'builds', 'config', 'host', 'images', 'queue', 'redis', 'runtime', 'store', 'verify'],
    // The client shares no code with the server's processes (api, worker, cli), nor with the engine's side.
    client: ['contract', 'errors', 'shared', 'archive', 'provenance'],
  },
  { cli: ['contract', 'errors', 'shared', 'api', 'builds', 'client', 'config', 'images', 'queue', 'runtime', 'store', 'worker'] },
  // The browser's page: only what src/ holds without Node (the contract, the CLI's ignore rules).
  { web: ['contract', 'client'] },
];

/** The regular expression for the files of a node, as dependency-cruiser names them. */
function pathOf(node) {
  if (node === 'web') return '^web/';
  if (node === 'config') return '^src/config\\.ts$';
  if (node === 'shared') return '^src/(?!config\\.ts$)[^/]+$';
  return `^src/${node}/`;
}

/**
 * What the matrix must be before its rules mean anything: each node in one layer, each
 * allowance to a node of a lower layer, and every folder of src/ a node. Returns the faults.
 */
function matrixFaults(layers, srcFolders) {
  const layerOf = new Map();
  const faults = [];
  layers.forEach((nodes, k) => {
    for (const node of Object.keys(nodes)) {
      if (layerOf.has(node)) faults.push(`${node} is in layers ${layerOf.get(node)} and ${k}`);
      else layerOf.set(node, k);
    }
  });
  layers.forEach((nodes, k) => {
    for (const [from, allowed] of Object.entries(nodes)) {
      for (const to of allowed) {
        if (!layerOf.has(to)) {
          faults.push(`${from} may import ${to}, which is in no layer`);
        } else if (layerOf.get(to) >= k) {
          faults.push(`${from} (layer ${k}) may import ${to} (layer ${layerOf.get(to)}): an arrow climbing back up`);
        }
      }
    }
  });
  for (const folder of srcFolders) if (!layerOf.has(folder)) faults.push(`src/${folder}/ is in no layer of the matrix`);
  return faults;
}

const srcFolders = readdirSync(path.join(__dirname, 'src'), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);
const faults = matrixFaults(LAYERS, srcFolders);
if (faults.length > 0) throw new Error(`.dependency-cruiser.cjs: the layer matrix is wrong:\n  ${faults.join('\n  ')}`);

/** One rule per node: it imports from itself and the nodes the matrix allows it, nothing else of src/ or web/. */
const matrixRules = LAYERS.flatMap((nodes) =>
  Object.entries(nodes).map(([node, allowed]) => ({
    name: `matrix-${node}`,
    comment: `${node} imports only from ${allowed.join(', ') || 'itself'} (docs/architecture.md, "Folders and what they may import")`,
    severity: 'error',
    from: { path: pathOf(node) },
    to: { path: '^(src|web)/', pathNot: [node, ...allowed].map(pathOf) },
  })),
);

module.exports = {
  forbidden: [
    ...matrixRules,
    // An import dependency-cruiser cannot follow to a file is one no rule above judges.
    {
      name: 'not-to-unresolvable',
      comment: 'every import resolves to a file (or a package), so the rules see every arrow',
      severity: 'error',
      from: { path: '^(src|web)/' },
      to: { couldNotResolve: true },
    },
    // It names a loop between two folders of src/ (or web/); one through config.ts or the top of
    // src/ (the folder src, their parent) it does not see, but the matrix rules above forbid it,
    // since every allowance points to a lower layer.
    {
      name: 'no-circular-folders',
      comment: 'no import cycle between folders: the drawing has no loop',
      severity: 'error',
      scope: 'folder',
      from: { path: '^(src|web)/' },
      to: { circular: true },
    },
    {
      // Stricter than the browser needs: a type-only import that reaches a package counts too.
      name: 'web-loads-no-package',
      comment: "what web/ imports from src/ loads no package (the browser has only the page's own files)",
      severity: 'error',
      from: { path: '^web/(?!copy-assets\\.mjs$)' },
      to: { path: '^(?!src/|web/)', reachable: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '\\.(sh|lua|go|css|html)$' },
  },
};
// For scripts/check-layers.mjs, which checks docs/architecture.md's layer table against the
// matrix; not enumerable, so dependency-cruiser's check of its own options does not see it.
Object.defineProperty(module.exports, 'layers', { value: LAYERS, enumerable: false });
