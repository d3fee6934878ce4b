import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
import { runHostOn, shInImage, writeTree } from './support/go-programs.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { writeToolchainProxy, type ToolchainProxy } from './support/toolchain-proxy.js';

/**
 * Exact Go releases from the Go toolchain module (docs/images.md, "Where Go comes from"), for real:
 * a file:// module proxy whose golang.org/toolchain module is made here from the Go 1.22.12
 * of the test images (the layout Go publishes), fetched and verified by the go command of
 * the fetch image, an image built from it beside Debian's and labelled so. A host built with
 * that release (whose errors package differs from Debian's) gets its plugin built by that
 * image, chosen by comparing the standard library's fingerprints, and loads it; a host
 * neither source matches is told which packages differ. A zip whose hash is not the pinned
 * one is refused naming both hashes. Which source an
 * image takes Go from (chooseGoSource) is test/toolchain-resolution.test.ts.
 */
const EXACT = '1.22.12';
const REPO = 'plugforge-test/go-release';
/** The release's image beside the usual (Debian's) one (docs/images.md, "Both sources of one release"). */
const RELEASE_IMAGE = `${REPO}:${EXACT}-go-release-linux-amd64`;
/** The Go release as published here differs from Debian's in one std file, as a distribution's patch would make them differ. */
const RELEASE_PATCH =
  'package errors\n\n// ReleaseBuild marks the tree the toolchain module publishes here.\nfunc ReleaseBuild() string { return "go-release" }\n';
/** A third build of the release: errors patched otherwise (neither source has it). */
const OTHER_PATCH = 'package errors\n\n// ReleaseBuild marks a distribution of its own.\nfunc ReleaseBuild() int { return 3 }\n';
const STD_HOST =
  'package main\n\nimport (\n\t"errors"\n\t"fmt"\n\t"os"\n\t"plugin"\n)\n\nfunc main() {\n\t_, err := plugin.Open(os.Args[1])\n\tfmt.Println("open:", err, errors.Is(err, nil))\n}\n';
const STD_PLUGIN = {
  'go.mod': 'module example.com/stdplugin\n\ngo 1.22\n',
  'plugin.go':
    'package main\n\nimport (\n\t"errors"\n\t"fmt"\n)\n\n// Hello wraps an error, as a plugin would.\nfunc Hello() error { return fmt.Errorf("hello: %w", errors.New("x")) }\n\nfunc main() {}\n',
};
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
  proxy = await writeToolchainProxy(docker, `plugforge/build:${EXACT}-linux-amd64`, EXACT, proxyDir, {
    patch: { 'src/errors/release_patch.go': RELEASE_PATCH },
  });
  // The release's usual image is Debian's: the test repository names the one the suite has.
  await docker.getImage(`plugforge/build:${EXACT}-linux-amd64`).tag({ repo: REPO, tag: `${EXACT}-linux-amd64` });
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
        alongside: true,
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
  it('images build --source go-release --alongside fetches it, the go command verifies it against the pinned line, the labels say so', async () => {
    const res = await runCli(
      ['images', 'build', '--go', EXACT, '--source', 'go-release', '--alongside', '--targets', 'linux-amd64', '--repo', REPO, '--quiet'],
      {
        env: { PLUGFORGE_GOPROXY: `file://${proxyDir}`, PLUGFORGE_GOSUMDB: 'off', PLUGFORGE_TOOLCHAIN_SUMS: sumsFile },
      },
    );
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain(`Go ${EXACT} (from go-release)`);
    expect(res.stdout).toContain(`${RELEASE_IMAGE}\tbuilt`);
    const labels = (await docker.getImage(RELEASE_IMAGE).inspect()).Config.Labels;
    expect(labels[LABEL_GO_SOURCE]).toBe('go-release');
    expect(labels[LABEL_GO_MODULE]).toBe(`golang.org/toolchain@${proxy.version} ${proxy.sum}`);
    // The tree is the one in the zip (with its patch), at the official GOROOT, and runs.
    const run = await docker.run(
      RELEASE_IMAGE,
      [
        'sh',
        '-c',
        'go env GOVERSION GOROOT && test -f /usr/local/go/src/go.mod && test -f /usr/local/go/src/errors/release_patch.go && test -x /usr/local/go/pkg/tool/linux_amd64/compile && echo ok',
      ],
      process.stdout,
      { HostConfig: { AutoRemove: true, NetworkMode: 'none' } },
    );
    expect(run[0].StatusCode).toBe(0);
    // Beside the release's usual image, which stays Debian's.
    expect((await docker.getImage(`${REPO}:${EXACT}-linux-amd64`).inspect()).Config.Labels[LABEL_GO_SOURCE]).toBe('debian');
    expect(await leftContainers()).toEqual([]);
    expect((await docker.listImages({ filters: JSON.stringify({ reference: ['plugforge/toolchain-staging:*'] }) })).length).toBe(0);
  }, 900_000);

  it("a host built with the Go release gets its plugin built by the Go release's image, and loads it; a host whose standard library neither source has is told which packages differ", async () => {
    // Host A: built by the release's image (its errors package patched). Host B: by Debian's Go with errors patched otherwise.
    const hostDir = path.join(work, 'std-host');
    await writeTree(hostDir, { 'go.mod': 'module example.com/stdhost\n\ngo 1.22\n', 'main.go': STD_HOST });
    await chmod(hostDir, 0o777);
    await shInImage(docker, RELEASE_IMAGE, hostDir, 'go build -trimpath -o host-release .', ['CGO_ENABLED=1']);
    await shInImage(
      docker,
      `plugforge/build:${EXACT}-linux-amd64`,
      hostDir,
      `cp -r /usr/local/go /tmp/go && printf '%s' "$PATCH" > /tmp/go/src/errors/release_patch.go && GOROOT=/tmp/go go build -trimpath -o host-patched .`,
      ['CGO_ENABLED=1', `PATCH=${OTHER_PATCH}`],
    );
    const hostRelease = await readFile(path.join(hostDir, 'host-release'));
    const hostPatched = await readFile(path.join(hostDir, 'host-patched'));

    service = await startService(
      'serve',
      await testConfig({
        PLUGFORGE_IMAGE_REPO: REPO,
        PLUGFORGE_DEFAULT_GO: EXACT,
        PLUGFORGE_GOPROXY: `file://${proxyDir}`,
        PLUGFORGE_GOSUMDB: 'off',
        PLUGFORGE_TOOLCHAIN_SUMS: sumsFile,
      }),
    );
    const api = new ApiClient(`http://127.0.0.1:${service.port}`);
    const submit = async (host: Buffer, name: string) => {
      const form = new FormData();
      form.append('source', new Blob([await tarOf(STD_PLUGIN, { gzip: true })]), 'source.tar.gz');
      form.append('hostBinary', new Blob([host]), 'host');
      const res = await fetch(`${api.base}/v1/builds?targets=linux-amd64&name=${name}&verify=loaded`, { method: 'POST', body: form });
      const body = (await res.json()) as any;
      expect(res.status, JSON.stringify(body)).toBe(202);
      return api.waitFor(body.id, undefined, 600_000);
    };

    const built = await submit(hostRelease, 'byrelease');
    const t = built.targets['linux-amd64'];
    expect(built.status, JSON.stringify(built.targets)).toBe('succeeded');
    // errors differs, and what compiles its export data in (syscall does, on linux).
    const debianDiffers = t.goSource.checked[0].differing as string[];
    expect(debianDiffers).toContain('errors');
    expect(t.goSource).toEqual({
      used: 'go-release',
      image: RELEASE_IMAGE,
      matched: true,
      checked: [
        { source: 'debian', image: `${REPO}:${EXACT}-linux-amd64`, differing: debianDiffers },
        { source: 'go-release', image: RELEASE_IMAGE, differing: [] },
      ],
    });
    expect(t.image).toBe(RELEASE_IMAGE);
    expect(t.verify).toMatchObject({ status: 'passed', method: 'fingerprints' });
    const artifact = Buffer.from(await (await fetch(t.artifact.url)).arrayBuffer());
    expect(await runHostOn(docker, RELEASE_IMAGE, work, hostRelease, artifact)).toContain('open: <nil>');
    // The other host refuses it: plugin.Open's own refusal, naming errors.
    expect(await runHostOn(docker, RELEASE_IMAGE, work, hostPatched, artifact)).toMatch(
      /open: plugin\.Open.*different version of package errors/,
    );

    const refused = await submit(hostPatched, 'patched');
    const r = refused.targets['linux-amd64'];
    expect(refused.status).toBe('failed');
    expect(r.goSource).toMatchObject({ used: 'debian', matched: false });
    expect(r.goSource.checked.map((c: any) => c.source)).toEqual(['debian', 'go-release']);
    for (const c of r.goSource.checked) expect(c.differing).toContain('errors');
    expect(r.error.code).toBe('package_mismatch');
    expect(r.error.message).toMatch(/only standard-library packages differ \([^)]*errors/);
    expect(r.error.message).toContain('no image source plugforge can make');
    const tc = (await api.get('/v1/toolchains')).body;
    expect(tc.toolchains.find((x: any) => x.go === EXACT)).toMatchObject({ source: 'debian' });
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
