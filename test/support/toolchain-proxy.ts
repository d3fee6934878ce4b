import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { readBody, readTar } from '../../src/archive/tar-streams.js';
import { TOOLCHAIN_MODULE, toolchainModuleVersion } from '../../src/images/toolchain-module.js';
import { storedZip } from './module-proxy.js';

export interface ToolchainProxy {
  /** "v0.0.1-go1.22.12.linux-amd64" */
  version: string;
  /** The h1: hash of the genuine tree, computed here as Go's dirhash.Hash1 does. */
  sum: string;
  /** The h1: hash of the zip served (the tampered one with `tamper`). */
  servedSum: string;
  /** The go.sum line an operator would pin. */
  goSumLine: string;
}

/**
 * Makes the Go toolchain module of release `exact` in a file:// module proxy at `dir`
 * (https://go.dev/ref/mod#goproxy-protocol: `list`, `.info`, `.mod`, `.zip`) from the Go at
 * /usr/local/go of `goImage`, laid out as Go publishes toolchains: every file of the GOROOT
 * under "golang.org/toolchain@<version>/", go.mod files below the root renamed _go.mod, no
 * file modes. `tamper` changes one byte of one file (a zip Go did not publish).
 */
export async function writeToolchainProxy(
  docker: Docker,
  goImage: string,
  exact: string,
  dir: string,
  options: { tamper?: boolean; patch?: Record<string, string> } = {},
): Promise<ToolchainProxy> {
  const version = toolchainModuleVersion(exact);
  const prefix = `${TOOLCHAIN_MODULE}@${version}/`;
  const entries = await goRootFiles(docker, goImage);
  // Files added to the tree before it is published: a release whose standard library is not the image's.
  for (const [rel, text] of Object.entries(options.patch ?? {})) entries.push({ rel, data: Buffer.from(text) });
  const files = entries.map(({ rel, data }) => ({
    name: prefix + (path.posix.basename(rel) === 'go.mod' ? `${path.posix.dirname(rel)}/_go.mod` : rel),
    data,
  }));
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const sum = hash1(files);
  if (options.tamper) {
    const victim = files.find((f) => f.name.endsWith('/VERSION'));
    if (!victim) throw new Error(`${goImage} has no VERSION file to tamper with`);
    victim.data = Buffer.concat([victim.data, Buffer.from('\n')]);
  }
  const servedSum = hash1(files);
  const base = path.join(dir, TOOLCHAIN_MODULE, '@v');
  await mkdir(base, { recursive: true });
  await writeFile(path.join(base, `${version}.zip`), storedZip(files));
  await writeFile(path.join(base, `${version}.mod`), `module ${TOOLCHAIN_MODULE}\n`);
  await writeFile(path.join(base, `${version}.info`), JSON.stringify({ Version: version, Time: '2025-01-31T18:38:03Z' }));
  await writeFile(path.join(base, 'list'), `${version}\n`);
  return { version, sum, servedSum, goSumLine: `${TOOLCHAIN_MODULE} ${version} ${sum}` };
}

/** dirhash.Hash1: sha256 over "<sha256 hex>  <name>\n" of every file in name order, base64. */
export function hash1(files: { name: string; data: Buffer }[]): string {
  const summary = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    summary.update(`${createHash('sha256').update(f.data).digest('hex')}  ${f.name}\n`);
  }
  return `h1:${summary.digest('base64')}`;
}

/** The regular files under /usr/local/go of `image`, relative to it. */
async function goRootFiles(docker: Docker, image: string): Promise<{ rel: string; data: Buffer }[]> {
  const container = await docker.createContainer({ Image: image, Cmd: ['true'], Labels: { 'org.plugforge.role': 'check' } });
  try {
    const archive = await container.getArchive({ path: '/usr/local/go' });
    const out: { rel: string; data: Buffer }[] = [];
    await readTar(archive as unknown as Readable, async (header, body) => {
      const data = await readBody(body, 512 * 1024 * 1024, () => new Error(`${header.name} is too large`));
      if (header.type === 'file') out.push({ rel: header.name.replace(/^go\//, ''), data });
    });
    return out;
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}
