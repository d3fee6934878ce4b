import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker } from './support/env.js';
import { GOTIFY_PLUGIN, slowPlugin } from './support/fixtures.js';
import { TenantClient } from './support/http.js';
import { writeModuleProxy } from './support/module-proxy.js';
import { startServe, type ServeProcess } from './support/serve-process.js';
import { tarOf } from './support/source.js';

/**
 * What one tenant can do to another through what they share (SECURITY.md): identical
 * builds under PLUGFORGE_REUSE=shared, and the module cache. Against `plugforge serve` as a
 * process, two tenants with tokens, a file:// module proxy made here, one running build per
 * tenant (PLUGFORGE_TENANT_MAX_RUNNING_BUILDS=1, so a tenant's own build can hold its next).
 */
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const suffix = randomBytes(3).toString('hex');
const ALICE = { tenant: `share-alice-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const BOB = { tenant: `share-bob-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const MODULE_CACHE = `plugforge-gomodcache-hs${suffix}`;
const QUERY = 'go=1.22&targets=linux-amd64';
/** A line of alice's module that no build of bob's may print. */
const SECRET = `s3cr3t-${randomBytes(8).toString('hex')}`;

const COMMON = {
  'go.mod': 'module example.com/common\n\ngo 1.22\n',
  'common.go': 'package common\n\n// Name is what both tenants use.\nconst Name = "common"\n',
};
const PRIVATE = {
  'go.mod': 'module example.com/secret\n\ngo 1.22\n\nrequire example.com/common v1.0.0\n',
  'secret.go': `package secret // ${SECRET}\n\nimport "example.com/common"\n\n// Token is alice's.\nconst Token = common.Name + "${SECRET}"\n`,
};

let docker: Docker;
let serve: ServeProcess;
let alice: TenantClient;
let bob: TenantClient;
let proxyDir = '';

/** Go's h1 dirhash of files named as in a module zip (https://go.dev/ref/mod#go-sum-files). */
function h1(files: Record<string, string>): string {
  const lines = Object.keys(files)
    .sort()
    .map((name) => `${sha256(files[name]!)}  ${name}\n`);
  return `h1:${createHash('sha256').update(lines.join('')).digest('base64')}`;
}

/** The go.sum lines of one module of the proxy. */
function sumOf(modulePath: string, files: Record<string, string>): string {
  const zipped = Object.fromEntries(Object.entries(files).map(([name, text]) => [`${modulePath}@v1.0.0/${name}`, text]));
  return `${modulePath} v1.0.0 ${h1(zipped)}\n${modulePath} v1.0.0/go.mod ${h1({ 'go.mod': files['go.mod']! })}\n`;
}

async function moduleDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-module-'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

beforeAll(async () => {
  docker = await requireDocker();
  proxyDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-goproxy-'));
  await chmod(proxyDir, 0o755);
  await writeModuleProxy(proxyDir, [
    { path: 'example.com/common', version: 'v1.0.0', srcDir: await moduleDir(COMMON) },
    { path: 'example.com/secret', version: 'v1.0.0', srcDir: await moduleDir(PRIVATE) },
  ]);
  serve = await startServe({
    PLUGFORGE_TOKENS: `${ALICE.tenant}:${sha256(ALICE.token)},${BOB.tenant}:${sha256(BOB.token)}`,
    PLUGFORGE_REUSE: 'shared',
    PLUGFORGE_TENANT_MAX_RUNNING_BUILDS: '1',
    PLUGFORGE_WORKER_CONCURRENCY: '3',
    PLUGFORGE_GOPROXY: `file://${proxyDir}`,
    PLUGFORGE_GOSUMDB: 'off',
    PLUGFORGE_MODULE_CACHE_VOLUME: MODULE_CACHE,
  });
  alice = new TenantClient(serve.url, ALICE.token);
  bob = new TenantClient(serve.url, BOB.token);
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  for (const v of (await docker?.listVolumes())?.Volumes ?? []) {
    if (v.Name.includes(suffix))
      await docker
        .getVolume(v.Name)
        .remove({ force: true })
        .catch(() => undefined);
  }
});

/** The plugin with a line of its own, so each case starts from a source no earlier build had. */
const variant = (label: string) => tarOf({ ...GOTIFY_PLUGIN, 'variant.go': `package main\n\n// ${label} ${suffix}\n` }, { gzip: true });

/** A build of alice's that compiles for a long while: with one running build per tenant, her next one waits behind it. */
async function aliceBusy(): Promise<string> {
  const res = await alice.submit(await tarOf(slowPlugin(8000), { gzip: true }), QUERY);
  expect(res.status, res.text).toBe(202);
  await alice.waitUntil(res.body.id, (d) => d.targets['linux-amd64'].status === 'running', 120_000);
  return res.body.id;
}

describe("an identical build of another tenant's, in flight (PLUGFORGE_REUSE=shared)", () => {
  it("is not ended by that tenant's cancel", async () => {
    const busy = await aliceBusy();
    const source = await variant('canceled');
    const held = await alice.submit(source, QUERY);
    expect(held.body.status).toBe('queued');
    const mine = await bob.submit(source, QUERY);
    expect(mine.status, mine.text).toBe(202);
    expect((await alice.request('DELETE', `/v1/builds/${held.body.id}`)).status).toBe(202);
    const doc = await bob.waitFor(mine.body.id, undefined, 240_000);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    expect(doc.reusedFrom).toBeUndefined();
    await alice.request('DELETE', `/v1/builds/${busy}`);
  }, 420_000);

  it("is not held back by that tenant's running limit", async () => {
    const busy = await aliceBusy();
    const source = await variant('held');
    const held = await alice.submit(source, QUERY);
    const mine = await bob.submit(source, QUERY);
    expect(mine.status, mine.text).toBe(202);
    // Bob's build runs (or has run) while alice's identical one still waits behind her own.
    const doc = await bob.waitUntil(mine.body.id, (d) => d.targets['linux-amd64'].status !== 'queued', 120_000);
    expect(doc.reusedFrom).toBeUndefined();
    expect((await alice.get(`/v1/builds/${held.body.id}`)).body.status).toBe('queued');
    expect((await alice.get(`/v1/builds/${busy}`)).body.status).toBe('running');
    expect((await bob.waitFor(mine.body.id, undefined, 240_000)).status).toBe('succeeded');
    await alice.request('DELETE', `/v1/builds/${busy}`);
    await alice.request('DELETE', `/v1/builds/${held.body.id}`);
  }, 420_000);
});

describe("an identical build of another tenant's that succeeded", () => {
  let first = '';

  beforeAll(async () => {
    const res = await alice.submit(await variant('done'), QUERY);
    expect((await alice.waitFor(res.body.id, undefined, 240_000)).status).toBe('succeeded');
    first = res.body.id;
  }, 260_000);

  it('gives its artifacts at once', async () => {
    const res = await bob.submit(await variant('done'), QUERY);
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ reusedFrom: first, status: 'succeeded' });
  });

  it('is not taken with reuse=off: the build runs anew', async () => {
    const res = await bob.submit(await variant('done'), `${QUERY}&reuse=off`);
    expect(res.status, res.text).toBe(202);
    expect(res.body.reusedFrom).toBeUndefined();
    const doc = await bob.waitFor(res.body.id, undefined, 240_000);
    expect(doc.status).toBe('succeeded');
    expect(doc.targets['linux-amd64'].phases.compile).toBeGreaterThan(0);
  }, 260_000);

  it('refuses reuse=sometimes, naming the values', async () => {
    const res = await bob.submit(await variant('done'), `${QUERY}&reuse=sometimes`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_option');
    expect(res.body.error.message).toContain('(on or off)');
  });
});

describe('the module cache', () => {
  const aliceSum = sumOf('example.com/common', COMMON) + sumOf('example.com/secret', PRIVATE);
  const bobSum = sumOf('example.com/common', COMMON);

  beforeAll(async () => {
    const res = await alice.submit(
      await tarOf(
        {
          'go.mod':
            'module example.com/alice\n\ngo 1.22\n\nrequire example.com/secret v1.0.0\n\nrequire example.com/common v1.0.0 // indirect\n',
          'go.sum': aliceSum,
          'plugin.go':
            'package main\n\nimport "example.com/secret"\n\n// Token is looked up by the host.\nfunc Token() string { return secret.Token }\n\nfunc main() {}\n',
        },
        { gzip: true },
      ),
      QUERY,
    );
    expect(res.status, res.text).toBe(202);
    const doc = await alice.waitFor(res.body.id, undefined, 240_000);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    expect(doc.dependencies).toMatchObject({ status: 'succeeded', modules: 2, downloaded: 2 });
  }, 260_000);

  it("does not let a cgo #include read another tenant's module, and the dependency log does not tell what others fetched", async () => {
    const res = await bob.submit(
      await tarOf(
        {
          'go.mod': 'module example.com/bob\n\ngo 1.22\n\nrequire example.com/common v1.0.0\n',
          'go.sum': bobSum,
          'plugin.go':
            'package main\n\nimport "example.com/common"\n\n// Name is looked up by the host.\nfunc Name() string { return common.Name }\n\nfunc main() {}\n',
          'peek.go': 'package main\n\n/*\n#include "/go/pkg/mod/example.com/secret@v1.0.0/secret.go"\n*/\nimport "C"\n',
        },
        { gzip: true },
      ),
      QUERY,
    );
    expect(res.status, res.text).toBe(202);
    const doc = await bob.waitFor(res.body.id, undefined, 240_000);
    const deps = (await bob.get(`/v1/builds/${res.body.id}/logs?target=deps`)).text;
    const build = (await bob.get(`/v1/builds/${res.body.id}/logs?target=linux-amd64`)).text;
    expect(build).not.toContain(SECRET);
    expect(JSON.stringify(doc)).not.toContain(SECRET);
    expect(deps).not.toContain('in the module cache');
    expect(deps).toContain('module example.com/common v1.0.0: downloaded');
    expect(doc.status).toBe('failed');
    expect(doc.targets['linux-amd64'].error.code).toBe('compile_failed');
    expect(build).toMatch(/secret\.go: No such file or directory/);
    // Each tenant's modules are in a volume of its own, named for the idle-volume sweep.
    const volumes = (await docker.listVolumes()).Volumes.map((v) => v.Name);
    expect(volumes).toEqual(expect.arrayContaining([`${MODULE_CACHE}-${ALICE.tenant}`, `${MODULE_CACHE}-${BOB.tenant}`]));
  }, 260_000);
});
