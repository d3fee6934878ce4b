import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { buildImages, IMAGES_DIR, type BuildProgress } from '../src/images/image-builder.js';
import { LABEL_GO_MODULE, LABEL_GO_SOURCE } from '../src/images/image-tags.js';
import type { ToolchainFetchConfig } from '../src/images/toolchain-module.js';
import { DockerImageEngine } from '../src/runtime/docker-image-engine.js';
import { runCli } from './support/cli.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { writeToolchainProxy, type ToolchainProxy } from './support/toolchain-proxy.js';

/**
 * Exact Go releases from the Go toolchain module (docs/images.md, "Where Go comes from"), for real:
 * a file:// module proxy whose golang.org/toolchain module is made here from the Go 1.22.12
 * of the test images (the layout Go publishes), fetched and verified by the go command of
 * the fetch image, an image built from it and labelled so, a plugin built and loaded with
 * it. A zip whose hash is not the pinned one is refused naming both hashes. Which source an
 * image takes Go from (chooseGoSource) is test/toolchain-resolution.test.ts.
 */
const EXACT = '1.22.12';
const REPO = 'plugforge-test/go-release';
let docker: Docker;
let redis: Redis;
let work = '';
let proxyDir = '';
let proxy: ToolchainProxy;
let sumsFile = '';
let service: RunningService | undefined;

const quiet: BuildProgress = { update: () => undefined, log: () => undefined, done: () => undefined, fail: () => undefined };

function fetchConfig(over: Partial<ToolchainFetchConfig> = {}): ToolchainFetchConfig {
  return { proxy: `file://${proxyDir}`, sumdb: 'off', noSumDb: '', private: '', insecure: '', sumsFile, ...over };
}

async function removeTestImages(): Promise<void> {
  for (const image of await docker.listImages({ filters: JSON.stringify({ reference: [`${REPO}:*`] }) })) {
    for (const tag of image.RepoTags ?? [])
      await docker
        .getImage(tag)
        .remove({ force: true })
        .catch(() => undefined);
  }
}

async function leftContainers(): Promise<string[]> {
  const all = await docker.listContainers({ all: true });
  return all
    .filter((c) => c.Image.startsWith('plugforge/toolchain-fetch') || c.Image.startsWith('plugforge/toolchain-staging'))
    .map((c) => `${c.Id.slice(0, 12)} ${c.Image}`);
}

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  await requireImages(docker, EXACT);
  await removeTestImages();
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-toolchain-'));
  await chmod(work, 0o755);
  proxyDir = path.join(work, 'proxy');
  proxy = await writeToolchainProxy(docker, `plugforge/build:${EXACT}-linux-amd64`, EXACT, proxyDir);
  sumsFile = path.join(work, 'toolchain.sum');
  await writeFile(sumsFile, `# pinned by the operator\n${proxy.goSumLine}\n`);
}, 300_000);

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
  if (docker) await removeTestImages();
  if (work) await rm(work, { recursive: true, force: true });
}, 120_000);

describe('where an image takes Go from', () => {
  it('no proxy and no Debian package for the release: images build fails naming both ways to get it', async () => {
    const res = await runCli(['images', 'build', '--go', '1.22.5', '--targets', 'linux-amd64', '--repo', REPO], {
      env: { PLUGFORGE_GOPROXY: 'off' },
    });
    expect(res.code, res.stderr).not.toBe(0);
    expect(res.stderr).toContain('go_release_unavailable');
    expect(res.stderr).toMatch(/Debian packages Go 1\.22 only as 1\.22\.12/);
    expect(res.stderr).toMatch(/set PLUGFORGE_GOPROXY to a Go module proxy that serves golang\.org\/toolchain/);
    expect(res.stderr).toMatch(/GO_SOURCE=official --build-arg GO_VERSION=1\.22\.5/);
  });

  it('nothing is installed unverified: checksum database off and no pinned line is refused before any download', async () => {
    const err = await buildImages(
      new DockerImageEngine(docker),
      {
        go: EXACT,
        source: 'go-release',
        targets: ['linux-amd64'],
        repo: REPO,
        imagesDir: IMAGES_DIR,
        toolchain: fetchConfig({ sumsFile: undefined as never }),
      },
      quiet,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlugforgeError);
    expect((err as PlugforgeError).code).toBe('toolchain_unverified');
    expect((err as PlugforgeError).message).toContain(`golang.org/toolchain@${proxy.version}`);
  });
});

describe('the toolchain module through a file:// proxy, on a real engine', () => {
  it('images build --source go-release fetches it, the go command verifies it against the pinned line, the labels say so', async () => {
    const res = await runCli(
      ['images', 'build', '--go', EXACT, '--source', 'go-release', '--targets', 'linux-amd64', '--repo', REPO, '--quiet'],
      {
        env: { PLUGFORGE_GOPROXY: `file://${proxyDir}`, PLUGFORGE_GOSUMDB: 'off', PLUGFORGE_TOOLCHAIN_SUMS: sumsFile },
      },
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(`Go ${EXACT} (from go-release)`);
    const labels = (await docker.getImage(`${REPO}:${EXACT}-linux-amd64`).inspect()).Config.Labels;
    expect(labels[LABEL_GO_SOURCE]).toBe('go-release');
    expect(labels[LABEL_GO_MODULE]).toBe(`golang.org/toolchain@${proxy.version} ${proxy.sum}`);
    // The tree is the one in the zip, at the official GOROOT, and runs.
    const run = await docker.run(
      `${REPO}:${EXACT}-linux-amd64`,
      [
        'sh',
        '-c',
        'go env GOVERSION GOROOT && test -f /usr/local/go/src/go.mod && test -x /usr/local/go/pkg/tool/linux_amd64/compile && echo ok',
      ],
      process.stdout,
      { HostConfig: { AutoRemove: true, NetworkMode: 'none' } },
    );
    expect(run[0].StatusCode).toBe(0);
    expect(await leftContainers()).toEqual([]);
    expect((await docker.listImages({ filters: JSON.stringify({ reference: ['plugforge/toolchain-staging:*'] }) })).length).toBe(0);
  }, 900_000);

  it('a plugin builds with it and loads, and /v1/toolchains says where its Go came from', async () => {
    service = await startService(
      'serve',
      await testConfig({ PLUGFORGE_IMAGE_REPO: REPO, PLUGFORGE_DEFAULT_GO: EXACT, PLUGFORGE_IMAGES_ON_DEMAND: '0' }),
    );
    const api = new ApiClient(`http://127.0.0.1:${service.port}`);
    const plugin = {
      'go.mod': 'module example.com/release\n\ngo 1.22\n',
      'plugin.go':
        'package main\n\nimport "strings"\n\n// Upper is what a host would call.\nfunc Upper(s string) string { return strings.ToUpper(s) }\n\nfunc main() {}\n',
    };
    const res = await api.submit(await tarOf(plugin, { gzip: true }), `targets=linux-amd64&go=${EXACT}&verify=loaded`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 600_000);
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    const t = doc.targets['linux-amd64'];
    expect(t.image).toBe(`${REPO}:${EXACT}-linux-amd64`);
    expect(t.verify.status).toBe('passed');
    expect(t.verify.method).toBe('probe');
    const tc = (await api.get('/v1/toolchains')).body;
    expect(tc.toolchains.find((x: any) => x.go === EXACT)).toMatchObject({ source: 'go-release', targets: ['linux-amd64'] });
  }, 900_000);

  it('a zip whose hash is not the pinned one is refused, naming the module and both hashes, and nothing is left', async () => {
    const tamperedDir = path.join(work, 'tampered');
    const tampered = await writeToolchainProxy(docker, `plugforge/build:${EXACT}-linux-amd64`, EXACT, tamperedDir, { tamper: true });
    const err = await buildImages(
      new DockerImageEngine(docker),
      {
        go: EXACT,
        source: 'go-release',
        targets: ['linux-amd64'],
        repo: `${REPO}-tampered`,
        imagesDir: IMAGES_DIR,
        toolchain: fetchConfig({ proxy: `file://${tamperedDir}` }),
      },
      quiet,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlugforgeError);
    const e = err as PlugforgeError;
    expect(e.code, e.message).toBe('toolchain_checksum_mismatch');
    expect(e.message).toContain(`golang.org/toolchain@${tampered.version}`);
    expect(e.message).toContain(proxy.sum); // what was pinned
    expect(e.message).toContain(tampered.servedSum); // what the proxy served
    expect(e.message).toContain('the pinned go.sum line');
    expect(await leftContainers()).toEqual([]);
    expect(
      (await docker.listImages({ filters: JSON.stringify({ reference: [`${REPO}-tampered:*`, 'plugforge/toolchain-staging:*'] }) })).length,
    ).toBe(0);
  }, 600_000);
});
