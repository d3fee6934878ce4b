import type { BuildRecord } from '../../src/builds/build-document.js';
import { startService, type RunningService } from '../../src/cli/serve-command.js';
import type { Config } from '../../src/config.js';
import { TARGET_IDS, TARGETS } from '../../src/contract/targets.js';
import { FakeRuntime, fakeElf } from '../../src/runtime/fake-runtime.js';
import { GOTIFY_PLUGIN } from './source.js';

/** The builder images a worker on a fake runtime reports (staticImages): one of Go `go` per target. */
export function fakeImages(go = '1.22.12') {
  return TARGET_IDS.map((target) => ({ go, target, image: `plugforge/build:${go}-${target}`, id: 'fake', size: 1, created: '' }));
}

/**
 * A worker on a scripted runtime (no engine): each target's container runs 50 ms and leaves
 * a bare ELF header of the target's machine as the artifact; it reports fakeImages().
 */
export function startFakeWorker(config: Config): Promise<RunningService> {
  return startService('worker', config, {
    runtime: new FakeRuntime((spec) => ({ runMs: 50, artifact: fakeElf(TARGETS[spec.target].elfClass, TARGETS[spec.target].elfMachine) })),
    images: fakeImages(),
  });
}

/** An accepted build's record, as the planner sees it: a plain plugin for every target; `over` changes what a test needs. */
export function sampleRecord(over: Partial<BuildRecord> = {}): BuildRecord {
  return {
    id: 'b1',
    tenant: 'public',
    createdAt: '2026-01-01T00:00:00.000Z',
    go: '1.22.12',
    goRequested: '1.22',
    name: 'hello',
    mode: 'plugin',
    host: 'gotify',
    targetIds: [...TARGET_IDS],
    source: { sha256: 'b'.repeat(64), size: 10, module: 'example.com/hello', vendored: false, requirements: false },
    ...over,
  };
}

/** A plugin that vendors a module of its own (vendor/modules.txt): it must build offline. */
export const VENDORED_PLUGIN: Record<string, string> = {
  'go.mod': 'module example.com/vendored\n\ngo 1.22\n\nrequire example.com/greet v1.0.0\n',
  'vendor/modules.txt': '# example.com/greet v1.0.0\n## explicit; go 1.22\nexample.com/greet\n',
  'vendor/example.com/greet/greet.go': 'package greet\n\n// Hello greets.\nfunc Hello(name string) string { return "hello, " + name }\n',
  'plugin.go':
    'package main\n\nimport "example.com/greet"\n\n// Greet is looked up by the host.\nfunc Greet(name string) string { return greet.Hello(name) }\n\nfunc main() {}\n',
};

/** A plugin with a type error. */
export const BROKEN_PLUGIN: Record<string, string> = {
  'go.mod': 'module example.com/broken\n\ngo 1.22\n',
  'plugin.go': 'package main\n\nfunc Value() int { return "not a number" }\n\nfunc main() {}\n',
};

/** A plugin whose single file takes the compiler several seconds (about 130k lines). */
export function slowPlugin(functions = 4000): Record<string, string> {
  const lines = ['package main', '', 'func main() {}', ''];
  for (let i = 0; i < functions; i++) {
    lines.push(`func F${i}(x int) int {`);
    for (let j = 0; j < 30; j++) lines.push(`\tif x%${j + 2} == ${j} { x = x*${j + 3} + ${i} } else { x = x - ${j} }`);
    lines.push('\treturn x', '}');
  }
  return { 'go.mod': 'module example.com/slow\n\ngo 1.22\n', 'slow.go': lines.join('\n') };
}

export { GOTIFY_PLUGIN };

/**
 * The text of `go version -m` of a linux/amd64 host executable (what a tenant may send as
 * hostBinary, or register a release with): its module at `version`, built with `go`, linking
 * `deps` (each "<path> <version> <h1: hash>").
 */
export function hostBuildInfo(module: string, version: string, go = '1.22.12', deps: string[] = []): string {
  return [
    `host: go${go}`,
    `\tpath\t${module}`,
    `\tmod\t${module}\t${version}\t`,
    ...deps.map((d) => `\tdep\t${d.split(' ').join('\t')}`),
    '\tbuild\t-buildmode=exe',
    '\tbuild\t-compiler=gc',
    '\tbuild\tCGO_ENABLED=1',
    '\tbuild\tGOARCH=amd64',
    '\tbuild\tGOOS=linux',
    '\tbuild\tGOAMD64=v1',
    '',
  ].join('\n');
}
