import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/env.js';

/**
 * Which folder may import which (docs/architecture.md, "Folders and what they may import").
 * Every folder of src/ is a node, and so are `config` (src/config.ts, read and sliced at the
 * top), `shared` (every other module at the top of src/) and `web` (the browser page).
 * The layers, lowest first: a folder imports only from folders in layers below its own,
 * and only those ALLOWED names, so the drawing of the code has no arrow that climbs back up.
 */
const SRC = path.join(REPO_ROOT, 'src');
const WEB = path.join(REPO_ROOT, 'web');
const LAYERS: readonly (readonly string[])[] = [
  ['contract', 'errors'],
  ['shared'],
  ['archive', 'redis', 'runtime', 'store', 'verify'],
  ['host', 'bundle', 'images'],
  ['builds'],
  ['provenance', 'queue'],
  ['config'],
  ['api', 'worker', 'client'],
  ['cli'],
  ['web'],
];
const ALLOWED: Record<string, readonly string[]> = {
  contract: [],
  errors: [],
  shared: ['contract', 'errors'],
  archive: ['contract', 'errors', 'shared'],
  redis: ['contract', 'errors', 'shared'],
  runtime: ['contract', 'errors', 'shared'],
  store: ['contract', 'errors', 'shared'],
  verify: ['contract', 'errors', 'shared'],
  host: ['contract', 'errors', 'shared', 'archive', 'verify'],
  bundle: ['contract', 'errors', 'shared', 'archive'],
  images: ['contract', 'errors', 'shared', 'runtime', 'verify'],
  builds: ['contract', 'errors', 'shared', 'host', 'redis', 'store'],
  provenance: ['contract', 'errors', 'shared', 'builds', 'store', 'verify'],
  queue: ['contract', 'errors', 'shared', 'builds', 'redis'],
  config: ['contract', 'errors', 'shared', 'archive', 'builds', 'images', 'store'],
  api: ['contract', 'errors', 'shared', 'archive', 'builds', 'bundle', 'config', 'host', 'images', 'provenance', 'queue', 'redis', 'store', 'verify'],
  worker: ['contract', 'errors', 'shared', 'archive', 'builds', 'config', 'host', 'images', 'queue', 'redis', 'runtime', 'store', 'verify'],
  // The client shares no code with the server's processes (api, worker, cli), nor with the engine's side.
  client: ['contract', 'errors', 'shared', 'archive', 'provenance'],
  cli: ['contract', 'errors', 'shared', 'api', 'builds', 'client', 'config', 'images', 'queue', 'runtime', 'store', 'worker'],
  // The browser's page: only what src/ holds without Node (the contract, the CLI's ignore rules).
  web: ['contract', 'client'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** The node a file belongs to: its folder of src/, `config`, `shared` or `web`. */
function nodeOf(file: string): string {
  if (!path.relative(WEB, file).startsWith('..')) return 'web';
  const rel = path.relative(SRC, file);
  if (rel.includes(path.sep)) return rel.split(path.sep)[0] ?? '';
  return rel.replace(/\.[jt]s$/, '') === 'config' ? 'config' : 'shared';
}

/** Every relative import of `file`: its specifier, the .ts file it lands on and that file's node. */
function imports(file: string): { spec: string; target: string; node: string }[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/g), ...text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g)].map((m) => m[1] as string);
  return specs.map((spec) => {
    const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
    return { spec, target, node: nodeOf(target) };
  });
}

/** The packages a file loads when it runs (type-only imports are erased). */
function runtimePackages(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s+(?!type\s)[^'"]*?from\s+'([^.'][^']*)'/g)].map((m) => m[1] as string);
}

const FILES = [...sourceFiles(SRC), ...sourceFiles(WEB)];
const NODES = [...new Set(FILES.map(nodeOf))].sort();

/** The folder graph: which node imports which, and through which files. */
function folderGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of FILES) {
    const from = nodeOf(file);
    for (const i of imports(file)) {
      if (i.node === from) continue;
      const edges = graph.get(from) ?? new Map<string, string>();
      if (!edges.has(i.node)) edges.set(i.node, `${path.relative(REPO_ROOT, file)} imports '${i.spec}'`);
      graph.set(from, edges);
    }
  }
  return graph;
}

/** Each cycle of the graph, found by a depth-first walk: "a → b → a (a/x.ts imports …; …)". */
function cycles(graph: Map<string, Map<string, string>>): string[] {
  const found = new Map<string, string>();
  const walk = (node: string, stack: string[]): void => {
    const at = stack.indexOf(node);
    if (at >= 0) {
      const loop = stack.slice(at);
      const start = loop.indexOf([...loop].sort()[0] as string);
      const turned = [...loop.slice(start), ...loop.slice(0, start)];
      const key = turned.join(' → ');
      const why = turned.map((n, k) => graph.get(n)?.get(turned[(k + 1) % turned.length] as string) ?? '').join('; ');
      found.set(key, `${key} → ${turned[0]} (${why})`);
      return;
    }
    for (const next of graph.get(node)?.keys() ?? []) walk(next, [...stack, node]);
  };
  for (const node of graph.keys()) walk(node, []);
  return [...found.values()].sort();
}

describe('module boundaries', () => {
  it('the import scan sees the imports it must judge', () => {
    // A scan that found nothing would pass every rule below.
    const found = imports(path.join(SRC, 'worker', 'image-job.ts')).map((i) => i.node);
    expect(found).toEqual(expect.arrayContaining(['runtime', 'queue', 'builds', 'images']));
    expect(imports(path.join(WEB, 'pack-folder.ts')).map((i) => i.node)).toContain('client');
  });

  it('the matrix names every folder, each in one layer, and allows only lower layers', () => {
    const layerOf = new Map(LAYERS.flatMap((names, k) => names.map((n) => [n, k] as const)));
    expect(NODES.filter((n) => !ALLOWED[n] || !layerOf.has(n))).toEqual([]);
    expect(LAYERS.flat().length).toBe(layerOf.size);
    const climbing = Object.entries(ALLOWED).flatMap(([from, to]) => to.filter((t) => (layerOf.get(t) ?? Infinity) >= (layerOf.get(from) ?? -1)).map((t) => `${from} → ${t}`));
    expect(climbing).toEqual([]);
  });

  for (const node of NODES) {
    it(`${node} imports only from ${(ALLOWED[node] ?? []).join(', ') || 'itself'}`, () => {
      const allowed = ALLOWED[node] ?? [];
      const offences = FILES.filter((f) => nodeOf(f) === node).flatMap((file) =>
        imports(file)
          .filter((i) => i.node !== node && !allowed.includes(i.node))
          .map((i) => `${path.relative(REPO_ROOT, file)} imports '${i.spec}' (${i.node})`),
      );
      expect(offences).toEqual([]);
    });
  }

  it('no import cycle between folders', () => {
    expect(cycles(folderGraph())).toEqual([]);
  });

  it("what web/ imports from src/ loads no package (the browser has only the page's own files)", () => {
    const seen = new Set<string>();
    const queue = sourceFiles(WEB).flatMap((f) => imports(f).filter((i) => i.node !== 'web').map((i) => i.target));
    const offences: string[] = [];
    while (queue.length > 0) {
      const file = queue.pop() as string;
      if (seen.has(file)) continue;
      seen.add(file);
      if (!existsSync(file)) {
        offences.push(`${path.relative(REPO_ROOT, file)} is missing`);
        continue;
      }
      offences.push(...runtimePackages(file).map((p) => `${path.relative(REPO_ROOT, file)} loads '${p}'`));
      queue.push(...imports(file).map((i) => i.target));
    }
    expect(seen.size).toBeGreaterThan(0);
    expect(offences).toEqual([]);
  });
});
