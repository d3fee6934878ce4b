import { chmod, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { BASE_IMAGE } from '../src/images/image-builder.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { runHostOn, writeTree } from './support/go-programs.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';

/**
 * Images on demand, for real: the Go 1.23 images are removed first, then a host built with
 * Debian's Go 1.23 (bookworm-backports) is sent as hostBinary beside a plain go=1.23 build.
 * Both wait "preparing" while one image build runs, then succeed; the host loads the
 * artifact. A release Debian does not have fails with the image builder's message. The rule
 * of which releases are made on demand is test/images-on-demand-rule.test.ts.
 */
let docker: Docker;
let redis: Redis;
let service: RunningService;
let api: ApiClient;
let work = '';
const REPO = 'plugforge/build';

const HOST = {
  'go.mod': 'module example.com/host\n\ngo 1.23\n',
  'main.go':
    'package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"plugin"\n)\n\nfunc main() {\n\t_, err := plugin.Open(os.Args[1])\n\tfmt.Println("open:", err)\n}\n',
};
const PLUGIN = {
  'go.mod': 'module example.com/ondemand\n\ngo 1.23\n',
  'plugin.go':
    'package main\n\nimport "strings"\n\n// Upper is what a host would call.\nfunc Upper(s string) string { return strings.ToUpper(s) }\n\nfunc main() {}\n',
};

async function removeGo123Images(): Promise<void> {
  for (const image of await docker.listImages({ filters: JSON.stringify({ reference: [`${REPO}:1.23*`] }) })) {
    for (const tag of image.RepoTags ?? [])
      await docker
        .getImage(tag)
        .remove({ force: true })
        .catch(() => undefined);
  }
}

/** Builds the host with Debian's Go 1.23 in a plain bookworm container (trimpath: its GOROOT is Debian's). */
async function buildHostWithDebianGo123(): Promise<Buffer> {
  const dir = path.join(work, 'host');
  await writeTree(dir, HOST);
  await chmod(dir, 0o777);
  const script = [
    'set -e',
    "echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list",
    'apt-get update -qq',
    'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-1.23-go gcc libc6-dev >/dev/null',
    'cd /src && GOCACHE=/tmp/cache GOTOOLCHAIN=local GOFLAGS=-mod=mod /usr/lib/go-1.23/bin/go build -trimpath -buildvcs=false -o host .',
  ].join('\n');
  const container = await docker.createContainer({
    Image: BASE_IMAGE,
    Cmd: ['sh', '-c', script],
    Tty: true,
    HostConfig: { Binds: [`${dir}:/src`] },
  });
  try {
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    if (res.StatusCode !== 0)
      throw new Error(`building the Go 1.23 host failed: ${(await container.logs({ stdout: true, stderr: true })).toString()}`);
  } finally {
    await container.remove({ force: true });
  }
  return readFile(path.join(dir, 'host'));
}

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  await requireImages(docker);
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-ondemand-'));
  await chmod(work, 0o755);
  await removeGo123Images();
  service = await startService('serve', await testConfig());
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
}, 120_000);

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

describe('images on demand on a real engine', () => {
  it('a Go 1.23 host binary and a go=1.23 build wait while one image build runs, then both succeed, and the host loads the artifact', async () => {
    const host = await buildHostWithDebianGo123();
    const form = new FormData();
    form.set('targets', 'linux-amd64,linux-arm64');
    form.set('source', new Blob([await tarOf(PLUGIN, { gzip: true })]), 'plugin.tar.gz');
    form.append('hostBinary', new Blob([host]), 'host');
    const [byHost, byOption] = await Promise.all([
      fetch(`${api.base}/v1/builds`, { method: 'POST', body: form }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as any,
      })),
      api.submit(await tarOf(PLUGIN, { gzip: true }), 'targets=linux-amd64,linux-arm64&go=1.23&name=byoption'),
    ]);
    for (const res of [byHost, byOption]) {
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(res.body.status).toBe('preparing');
      expect(res.body.images).toMatchObject({ status: 'queued' });
    }
    expect(byHost.body.go).toMatch(/^1\.23\.\d+$/);
    expect(byOption.body.go).toBe('1.23');

    const docs = await Promise.all([api.waitFor(byHost.body.id, undefined, 900_000), api.waitFor(byOption.body.id, undefined, 900_000)]);
    for (const doc of docs) {
      expect(doc.status, JSON.stringify({ images: doc.images, targets: doc.targets })).toBe('succeeded');
      expect(doc.images.status).toBe('succeeded');
      expect(doc.go).toBe(byHost.body.go);
      expect(doc.targets['linux-amd64'].image).toBe(`${REPO}:${doc.go}-linux-amd64`);
    }
    // One image build for both: the other build found the images made (or waited for them).
    expect(docs.map((d) => d.images.built).sort()).toEqual([false, true]);
    const logs = await Promise.all(docs.map(async (d) => (await api.get(`/v1/builds/${d.id}/logs`)).text));
    expect(logs.filter((l) => l.includes('building them (images on demand')).length).toBe(1);
    expect(docs[0].targets['linux-amd64'].verify.method).toBe('fingerprints');

    const artifact = Buffer.from(await (await fetch(docs[0].targets['linux-amd64'].artifact.url)).arrayBuffer());
    expect(await runHostOn(docker, `${REPO}:${docs[0].go}-linux-amd64`, work, host, artifact)).toContain('open: <nil>');
  }, 1_200_000);

  it("a release Debian does not have, with no proxy this engine reaches, fails every target with the image builder's message", async () => {
    const res = await api.submit(await tarOf(PLUGIN, { gzip: true }), 'targets=linux-amd64&go=1.23.99&name=nosuch');
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.status).toBe('preparing');
    const doc = await api.waitFor(res.body.id, undefined, 900_000);
    expect(doc.status).toBe('failed');
    expect(doc.images.status).toBe('failed');
    const target = doc.targets['linux-amd64'];
    // Not Debian's 1.23.5: it comes from the Go toolchain module, through the default proxy, which this machine cannot reach.
    expect(target.error.code, target.error.message).toBe('toolchain_proxy_unreachable');
    expect(target.error.message).toMatch(
      /Builder images of Go 1\.23\.99: Could not reach the module proxy https:\/\/proxy\.golang\.org .*golang\.org\/toolchain@v0\.0\.1-go1\.23\.99\.linux-amd64/,
    );
    expect(target.error.message).toMatch(/or build from Debian's release of that minor/);
  }, 900_000);
});
