import { chmod, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import { shInImage, writeTree } from './go-programs.js';
import { writeModuleProxy } from './module-proxy.js';

/**
 * Three releases of one plugin-loading host that differ only in the example.com/shared they
 * link (docs/hosts.md, "A matrix: every release in one build"):
 *
 * - 1.0.0 links shared v1.0.0, 1.1.0 links shared v1.1.0, both from `proxyDir` (the proxy
 *   the service builds from);
 * - 1.1.1 links shared v1.1.0 too, but from a second proxy whose v1.1.0 has other content
 *   at the same version: the same build info, other package fingerprints.
 *
 * Each is built with cgo for linux-amd64 and linux-arm64 in the Go builder images, from the
 * module cache (not vendored, no -trimpath), as a host's own release build would be.
 */
export const MATRIX_VERSIONS = ['1.0.0', '1.1.0', '1.1.1'] as const;
export type MatrixVersion = (typeof MATRIX_VERSIONS)[number];
export const MATRIX_TARGETS = ['linux-amd64', 'linux-arm64'] as const;
export type MatrixTarget = (typeof MATRIX_TARGETS)[number];

const SHARED_GO_MOD = 'module example.com/shared\n\ngo 1.21\n';
const shared = (version: string) => `package shared\n\n// Version names the release.\nfunc Version() string { return "${version}" }\n`;

const HOST_MAIN = `package main

import (
	"fmt"
	"os"
	"plugin"

	"example.com/shared"
)

func main() {
	fmt.Println("host with shared", shared.Version())
	_, err := plugin.Open(os.Args[1])
	fmt.Println("open:", err)
}
`;

/** Which shared each release links, and from which proxy (a directory under the work dir). */
const RELEASES: Record<MatrixVersion, { shared: string; proxy: string }> = {
  '1.0.0': { shared: 'v1.0.0', proxy: 'proxy' },
  '1.1.0': { shared: 'v1.1.0', proxy: 'proxy' },
  '1.1.1': { shared: 'v1.1.0', proxy: 'proxy-changed' },
};

export const PLUGIN_GO_MOD = 'module example.com/mplugin\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n';
export const PLUGIN_GO =
  'package main\n\nimport "example.com/shared"\n\n// Hello says which shared it was built with.\nfunc Hello() string { return shared.Version() }\n\nfunc main() {}\n';

export interface MatrixFixture {
  /** The proxy with the real shared v1.0.0 and v1.1.0: the service's PLUGFORGE_GOPROXY. */
  proxyDir: string;
  /** Each release's executables, by target. */
  hosts: Record<MatrixVersion, Record<MatrixTarget, Buffer>>;
  /** The plugin's source: go.mod, go.sum (go mod tidy against proxyDir), plugin.go. */
  plugin: Record<string, string>;
}

/** Builds the fixture under `work` (bound at /src in the builder images). */
export async function buildMatrixFixture(docker: Docker, go: string, work: string): Promise<MatrixFixture> {
  const modules = path.join(work, 'modules');
  await writeTree(modules, {
    'shared-1.0.0/go.mod': SHARED_GO_MOD,
    'shared-1.0.0/shared.go': shared('v1.0.0'),
    'shared-1.1.0/go.mod': SHARED_GO_MOD,
    'shared-1.1.0/shared.go': shared('v1.1.0'),
    'shared-1.1.0-changed/go.mod': SHARED_GO_MOD,
    'shared-1.1.0-changed/shared.go': shared('v1.1.0, rebuilt from changed source'),
  });
  const proxyDir = path.join(work, 'proxy');
  await mkdir(proxyDir);
  await writeModuleProxy(proxyDir, [
    { path: 'example.com/shared', version: 'v1.0.0', srcDir: path.join(modules, 'shared-1.0.0') },
    { path: 'example.com/shared', version: 'v1.1.0', srcDir: path.join(modules, 'shared-1.1.0') },
  ]);
  const changedDir = path.join(work, 'proxy-changed');
  await mkdir(changedDir);
  await writeModuleProxy(changedDir, [
    { path: 'example.com/shared', version: 'v1.1.0', srcDir: path.join(modules, 'shared-1.1.0-changed') },
  ]);

  for (const v of MATRIX_VERSIONS) {
    await writeTree(path.join(work, `mhost-${v}`), {
      'go.mod': `module example.com/mhost\n\ngo 1.22\n\nrequire example.com/shared ${RELEASES[v].shared}\n`,
      'main.go': HOST_MAIN,
    });
  }
  await writeTree(path.join(work, 'mplugin'), { 'go.mod': PLUGIN_GO_MOD, 'plugin.go': PLUGIN_GO });
  await chmod(work, 0o777);

  // Each release from an empty module cache: 1.1.1 must fetch v1.1.0 from its own proxy. The
  // cache is where plugforge's builds keep it (/go/pkg/mod, as in Go's own images): without
  // -trimpath the source paths are part of a package's fingerprint. No go.sum is given, so
  // each host's go.sum holds the hash of what its proxy served (no checksum database).
  const env = ['GOSUMDB=off', 'GOFLAGS=-mod=mod', 'CGO_ENABLED=1', 'GOMODCACHE=/go/pkg/mod'];
  for (const target of MATRIX_TARGETS) {
    const script = MATRIX_VERSIONS.map(
      (v) => `go clean -modcache && cd /src/mhost-${v} && GOPROXY=file:///src/${RELEASES[v].proxy} go build -o host-${target} .`,
    ).join('\n');
    await shInImage(docker, `plugforge/build:${go}-${target}`, work, script, env);
  }
  await shInImage(docker, `plugforge/build:${go}-linux-amd64`, work, 'cd /src/mplugin && GOPROXY=file:///src/proxy go mod tidy', env);

  const hosts = {} as MatrixFixture['hosts'];
  for (const v of MATRIX_VERSIONS) {
    hosts[v] = {} as Record<MatrixTarget, Buffer>;
    for (const t of MATRIX_TARGETS) hosts[v][t] = await readFile(path.join(work, `mhost-${v}`, `host-${t}`));
  }
  const goSum = await readFile(path.join(work, 'mplugin', 'go.sum'), 'utf8');
  return { proxyDir, hosts, plugin: { 'go.mod': PLUGIN_GO_MOD, 'go.sum': goSum, 'plugin.go': PLUGIN_GO } };
}
