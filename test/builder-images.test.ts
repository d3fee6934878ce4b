import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import tar from 'tar-stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildImages } from '../src/images/image-builder.js';
import { DockerImageEngine } from '../src/runtime/docker-image-engine.js';
import { runCommandInImage } from '../src/runtime/run-command.js';
import { TARGET_IDS, TARGETS, type ImageTargetId } from '../src/contract/targets.js';
import { readElfHeader } from '../src/verify/elf-header.js';
import { REPO_ROOT, requireDocker, requireImages } from './support/env.js';

const run = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'bin', 'plugforge.js');

let docker: Docker;
let go = '';

beforeAll(async () => {
  docker = await requireDocker();
  go = await requireImages(docker, '1.22');
});

const EXPECTED_ENV: Record<ImageTargetId, string[]> = {
  'linux-amd64': ['amd64', 'gcc', '/usr/local/go'],
  'linux-arm-7': ['arm', 'arm-linux-gnueabihf-gcc', '/usr/local/go'],
  'linux-arm64': ['arm64', 'aarch64-linux-gnu-gcc', '/usr/local/go'],
  'linux-386': ['386', 'i686-linux-gnu-gcc', '/usr/local/go'],
};

/** Builds a stdlib-only plugin inside `image` (a trusted test script) and returns the .so bytes. */
async function buildPluginIn(image: string): Promise<Buffer> {
  const script = [
    'set -e',
    'mkdir -p /tmp/p && cd /tmp/p',
    'printf "module example.com/p\\n\\ngo 1.22\\n" > go.mod',
    'printf "package main\\n\\nimport \\"strings\\"\\n\\nfunc Upper(s string) string { return strings.ToUpper(s) }\\n\\nfunc main() {}\\n" > p.go',
    'GOCACHE=/tmp/cache go build -buildmode=plugin -o /tmp/p/p.so .',
  ].join('\n');
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['sh', '-c', script],
    NetworkDisabled: true,
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    if (res.StatusCode !== 0) {
      const logs = await container.logs({ stdout: true, stderr: true });
      throw new Error(`plugin build in ${image} exited ${res.StatusCode}: ${logs.toString()}`);
    }
    const archive = (await container.getArchive({ path: '/tmp/p/p.so' })) as unknown as NodeJS.ReadableStream;
    return await new Promise<Buffer>((resolve, reject) => {
      const extract = tar.extract();
      const chunks: Buffer[] = [];
      extract.on('entry', (_h, stream, next) => {
        stream.on('data', (c) => chunks.push(c as Buffer));
        stream.on('end', next);
      });
      extract.on('finish', () => resolve(Buffer.concat(chunks)));
      extract.on('error', reject);
      archive.pipe(extract);
    });
  } finally {
    await container.remove({ force: true });
  }
}

describe('builder images of Go 1.22', () => {
  it('carry the exact Go release in their tag and label', async () => {
    expect(go).toMatch(/^1\.22\.\d+$/);
    for (const t of TARGET_IDS) {
      const info = await docker.getImage(`plugforge/build:${go}-${t}`).inspect();
      expect(info.Config.Labels).toMatchObject({ 'org.plugforge.go.version': go, 'org.plugforge.target': t });
      const v = await runCommandInImage(docker, `plugforge/build:${go}-${t}`, ['go', 'env', 'GOVERSION']);
      expect(v.stdout.trim()).toBe(`go${go}`);
    }
  });

  it.each(TARGET_IDS)(
    "%s: go env GOARCH CC GOROOT print the target toolchain, with the builds' defaults (GOARM 7, GO386 sse2, GOAMD64 v1)",
    async (t) => {
      const res = await runCommandInImage(docker, `plugforge/build:${go}-${t}`, [
        'go',
        'env',
        'GOARCH',
        'CC',
        'GOROOT',
        'GOARM',
        'CGO_ENABLED',
        'GOTOOLCHAIN',
        'GO386',
        'GOAMD64',
      ]);
      const lines = res.stdout.split('\n');
      expect(lines.slice(0, 3)).toEqual(EXPECTED_ENV[t]);
      if (t === 'linux-arm-7') expect(lines[3]).toBe('7');
      expect(lines.slice(4, 6)).toEqual(['1', 'local']);
      if (t === 'linux-386') expect(lines[6]).toBe('sse2');
      if (t === 'linux-amd64') expect(lines[7]).toBe('v1');
    },
  );

  it.each(TARGET_IDS)("%s: builds a stdlib-only plugin whose ELF class and machine are the target's", async (t) => {
    const so = await buildPluginIn(`plugforge/build:${go}-${t}`);
    expect(readElfHeader(so)).toEqual({ elfClass: TARGETS[t].elfClass, dataEncoding: 1, type: 3, machine: TARGETS[t].elfMachine });
  });
});

// Its refusal of an unknown Go minor or target, which needs no engine: test/toolchain-resolution.test.ts.
describe('plugforge images build', () => {
  it('builds Go 1.27 (trixie-backports) for all four targets, tagged with the exact version it installed', async () => {
    const res = await run('node', [CLI, 'images', 'build', '--go', '1.27'], {
      cwd: REPO_ROOT,
      timeout: 900_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const tags = res.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t')[0]);
    expect(tags).toHaveLength(4);
    const version = /^plugforge\/build:(1\.27\.\d+)-linux-amd64$/.exec(tags[0] ?? '')?.[1];
    expect(version, res.stdout).toBeDefined();
    expect(tags).toEqual(TARGET_IDS.map((t) => `plugforge/build:${version}-${t}`));
    for (const t of TARGET_IDS) {
      const v = await runCommandInImage(docker, `plugforge/build:${version}-${t}`, ['go', 'env', 'GOVERSION', 'GOARCH']);
      expect(v.stdout.split('\n').slice(0, 2)).toEqual([`go${version}`, EXPECTED_ENV[t][0]]);
    }
  }, 900_000);

  it('leaves images that exist alone unless forced', async () => {
    const started = Date.now();
    const res = await run('node', [CLI, 'images', 'build', '--go', '1.22'], { cwd: REPO_ROOT });
    expect(res.stdout.trim().split('\n')).toEqual(TARGET_IDS.map((t) => `plugforge/build:${go}-${t}\tpresent`));
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('names the package when an apt step fails', async () => {
    // A copy of images/ whose 386 Dockerfile asks for a package Debian does not have,
    // built into a scratch repository on top of the real amd64 image.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-images-'));
    await cp(path.join(REPO_ROOT, 'images'), dir, { recursive: true });
    const dockerfile = path.join(dir, 'linux-386', 'Dockerfile');
    await writeFile(dockerfile, (await readFile(dockerfile, 'utf8')).replaceAll('gcc-i686-linux-gnu ', 'gcc-i686-linux-gnu-nonexistent '));
    const repo = 'plugforge-test/broken';
    await docker.getImage(`plugforge/build:${go}-linux-amd64`).tag({ repo, tag: `${go}-linux-amd64` });
    try {
      const progress = { update() {}, log() {}, done() {}, fail() {} };
      await expect(
        buildImages(new DockerImageEngine(docker), { go, targets: ['linux-386'], repo, imagesDir: dir }, progress),
      ).rejects.toThrow(/package gcc-i686-linux-gnu-nonexistent is not available/);
    } finally {
      await docker
        .getImage(`${repo}:${go}-linux-amd64`)
        .remove({ noprune: true })
        .catch(() => undefined);
    }
  });
});
