import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';

/** Where Debian's golang-*-dev packages put their source (GOPATH layout). */
export const DEBIAN_GOCODE = '/usr/share/gocode';

/**
 * A vendor/ tree of gin and every package it imports, from Debian's packaged sources
 * (golang-github-gin-gonic-gin-dev and its dependencies), as a file map for a plugin or
 * host module: `vendor/modules.txt` plus each package's non-test source files, and the
 * go.mod `require` block that matches it. Versions are gin's own (v1.8.1) and, for the
 * others, `v<major>.0.0-debian`: what matters to the tests is that host and plugin agree.
 */
export async function ginVendorTree(docker: Docker, image: string): Promise<{ files: Record<string, string>; require: string }> {
  const packages = (await listDeps(docker, image, 'github.com/gin-gonic/gin')).filter(Boolean);
  const modules = new Map<string, { version: string; go?: string; packages: string[] }>();
  const files: Record<string, string> = {};
  for (const pkg of packages) {
    const { module, go } = await moduleOf(pkg);
    const entry = modules.get(module) ?? { version: versionOf(module), ...(go ? { go } : {}), packages: [] };
    entry.packages.push(pkg);
    modules.set(module, entry);
    const dir = path.join(DEBIAN_GOCODE, 'src', pkg);
    // Every file of the package but its tests: assembly (.s) and headers build too.
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isFile() || entry.name.endsWith('_test.go') || !/\.(go|s|h|c)$/.test(entry.name)) continue;
      files[`vendor/${pkg}/${entry.name}`] = await readFile(path.join(dir, entry.name), 'utf8');
    }
  }
  const sorted = [...modules.entries()].sort(([a], [b]) => a.localeCompare(b));
  files['vendor/modules.txt'] = sorted
    .map(([m, e]) => `# ${m} ${e.version}\n## explicit${e.go ? `; go ${e.go}` : ''}\n${e.packages.sort().join('\n')}\n`)
    .join('');
  const require = `require (\n${sorted.map(([m, e]) => `\t${m} ${e.version}\n`).join('')})\n`;
  return { files, require };
}

/** The non-standard packages `pkg` imports, itself included, in GOPATH mode over Debian's sources. */
async function listDeps(docker: Docker, image: string, pkg: string): Promise<string[]> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['go', 'list', '-deps', '-f', '{{if not .Standard}}{{.ImportPath}}{{end}}', pkg],
    Env: ['GO111MODULE=off', 'GOPATH=/gopath', 'GOCACHE=/tmp/gocache'],
    NetworkDisabled: true,
    Tty: true,
    HostConfig: { NetworkMode: 'none', Binds: [`${DEBIAN_GOCODE}:/gopath:ro`] },
  });
  try {
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    const out = (await container.logs({ stdout: true, stderr: true })).toString('utf8');
    if (res.StatusCode !== 0)
      throw new Error(
        `go list of ${pkg} over ${DEBIAN_GOCODE} failed (is golang-github-gin-gonic-gin-dev installed? ./scripts/test installs it): ${out}`,
      );
    return out.split(/\r?\n/).map((l) => l.trim());
  } finally {
    await container.remove({ force: true });
  }
}

/** The module a package belongs to: the nearest go.mod above it (or its first three path elements). */
async function moduleOf(pkg: string): Promise<{ module: string; go?: string }> {
  const parts = pkg.split('/');
  for (let n = parts.length; n >= 1; n--) {
    const candidate = parts.slice(0, n).join('/');
    const text = await readFile(path.join(DEBIAN_GOCODE, 'src', candidate, 'go.mod'), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const module = /^module\s+(\S+)/m.exec(text)?.[1] ?? candidate;
    const go = /^go\s+(\d+\.\d+)/m.exec(text)?.[1];
    return { module, ...(go ? { go } : {}) };
  }
  return { module: parts.slice(0, 3).join('/') };
}

function versionOf(module: string): string {
  if (module === 'github.com/gin-gonic/gin') return 'v1.8.1';
  const major = /(?:\/v|\.v)(\d+)$/.exec(module)?.[1];
  return `v${major && major !== '1' ? major : '0'}.0.0-debian`;
}
