import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import type { Config } from '../src/config.js';
import { containersLeft, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { filesUnder } from './support/hostile.js';
import { TenantClient } from './support/http.js';
import { GOTIFY_PLUGIN, slowPlugin } from './support/fixtures.js';
import { tarOf } from './support/source.js';
import { eventually } from './support/eventually.js';

/**
 * Tenants on the real service (Redis, a worker on Docker): tokens configured as hashes,
 * 401 without a valid one, 403 on another tenant's build, per-tenant limits, and a Go build
 * cache per tenant. How tokens are configured, without a service: test/config.test.ts.
 */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const suffix = randomBytes(3).toString('hex');
const ALICE = { tenant: `sec-alice-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const BOB = { tenant: `sec-bob-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };

let redis: Redis;
let docker: Docker;
let service: RunningService;
let config: Config;
let base = '';
let go = '';

let alice: TenantClient;
let bob: TenantClient;
let anonymous: TenantClient;

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-tokens-'));
  const tokensFile = path.join(dir, 'tokens');
  await writeFile(
    tokensFile,
    `# tenant:sha256 of the token\n${ALICE.tenant}:${sha256(ALICE.token)}\n\n${BOB.tenant}:${sha256(BOB.token)}  # bob's CI\n`,
  );
  config = await testConfig({ PLUGFORGE_TOKENS_FILE: tokensFile, PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS: '2' });
  service = await startService('serve', config);
  base = `http://127.0.0.1:${service.port}`;
  alice = new TenantClient(base, ALICE.token);
  bob = new TenantClient(base, BOB.token);
  anonymous = new TenantClient(base, undefined);
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
  // The cache volumes these tenants' builds made.
  for (const v of (await docker?.listVolumes())?.Volumes ?? []) {
    if (v.Name.includes(suffix))
      await docker
        .getVolume(v.Name)
        .remove({ force: true })
        .catch(() => undefined);
  }
});

/** Containers of a build; with a role, only those (build: the build containers, not their disks' holders). */
async function containersOf(buildId: string, role?: string) {
  return docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`org.plugforge.build=${buildId}`, ...(role ? [`org.plugforge.role=${role}`] : [])] }),
  });
}

describe('authentication', () => {
  it('leaves /healthz, /readyz and /metrics open', async () => {
    expect((await anonymous.get('/healthz')).status).toBe(200);
    expect((await anonymous.get('/readyz')).status).toBe(200);
    expect((await anonymous.get('/metrics')).status).toBe(200);
  });

  it('answers 401 unauthorized without a token, with a wrong one, with a malformed header, and with the hash instead of the token', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { Authorization: `Bearer ${ALICE.token}x` },
      { Authorization: `Basic ${Buffer.from(`alice:${ALICE.token}`).toString('base64')}` },
      { Authorization: `Bearer ${sha256(ALICE.token)}` },
      { Authorization: 'Bearer' },
    ];
    for (const headers of attempts) {
      for (const [method, p] of [
        ['GET', '/v1/toolchains'],
        ['GET', '/v1/builds/abc123'],
        ['DELETE', '/v1/builds/abc123'],
        ['GET', '/v1/builds/abc123/logs'],
        ['GET', '/v1/builds/abc123/artifacts/linux-amd64'],
        ['GET', '/v1/nothing-here'],
      ] as const) {
        const res = await anonymous.request(method, p, undefined, headers);
        expect(res.status, `${method} ${p} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.body.error.code).toBe('unauthorized');
        expect(res.body.error.message).toMatch(/token|Bearer/);
        expect(res.headers.get('www-authenticate')).toBe('Bearer realm="plugforge"');
      }
    }
  });

  it('refuses an unauthenticated upload before reading it, and stores nothing', async () => {
    const res = await anonymous.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
    expect(await filesUnder(path.join(config.dataDir, 'blobs'))).toEqual([]);
  });
});

describe('builds of two tenants', () => {
  let aliceBuild = '';
  let bobBuild = '';

  beforeAll(async () => {
    const source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    const [a, b] = await Promise.all([
      alice.submit(source, 'targets=linux-amd64&name=alice'),
      bob.submit(source, 'targets=linux-amd64&name=bob'),
    ]);
    expect(a.status, JSON.stringify(a.body)).toBe(202);
    expect(b.status, JSON.stringify(b.body)).toBe(202);
    aliceBuild = a.body.id;
    bobBuild = b.body.id;
    expect((await alice.waitFor(aliceBuild)).status).toBe('succeeded');
    expect((await bob.waitFor(bobBuild)).status).toBe('succeeded');
  });

  it('shows a tenant its own build, logs and artifacts', async () => {
    expect((await alice.get(`/v1/builds/${aliceBuild}`)).body.status).toBe('succeeded');
    expect((await alice.get(`/v1/builds/${aliceBuild}/logs`)).text).toContain('built alice-linux-amd64.so');
    const artifact = await alice.bytes(`/v1/builds/${aliceBuild}/artifacts/linux-amd64`);
    expect(artifact.status).toBe(200);
    expect(artifact.bytes.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect((await alice.bytes(`/v1/builds/${aliceBuild}/artifacts.tar.gz`)).status).toBe(200);
  });

  it("answers 403 forbidden on every route of another tenant's build, and 404 on a build that does not exist", async () => {
    for (const p of [
      `/v1/builds/${aliceBuild}`,
      `/v1/builds/${aliceBuild}/logs`,
      `/v1/builds/${aliceBuild}/artifacts/linux-amd64`,
      `/v1/builds/${aliceBuild}/artifacts.tar.gz`,
    ]) {
      const res = await bob.get(p);
      expect(res.status, p).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
      expect(res.body.error.message).toMatch(/belongs to another tenant/);
      expect(res.text).not.toContain('alice-linux-amd64.so');
    }
    expect((await alice.get(`/v1/builds/${bobBuild}`)).status).toBe(403);
    const missing = await alice.get('/v1/builds/zzzzzzzzzzzz');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('build_not_found');
  });

  it('lets a tenant cancel only its own builds', async () => {
    const res = await alice.submit(await tarOf(slowPlugin(), { gzip: true }), 'targets=linux-amd64');
    expect(res.status).toBe(202);
    const denied = await bob.request('DELETE', `/v1/builds/${res.body.id}`);
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('forbidden');
    expect((await alice.get(`/v1/builds/${res.body.id}`)).body.status).not.toBe('canceled');
    const canceled = await alice.request('DELETE', `/v1/builds/${res.body.id}`);
    expect(canceled.status).toBe(202);
    expect((await alice.waitFor(res.body.id)).status).toBe('canceled');
  });

  it('gives each tenant a Go build cache of its own', async () => {
    const volumes = (await docker.listVolumes()).Volumes.map((v) => v.Name);
    const aliceCache = `plugforge-gocache-${ALICE.tenant}-${go}-linux-amd64`;
    const bobCache = `plugforge-gocache-${BOB.tenant}-${go}-linux-amd64`;
    expect(volumes).toContain(aliceCache);
    expect(volumes).toContain(bobCache);
    // And a running build mounts its tenant's cache, and only that one, at /cache.
    const res = await bob.submit(await tarOf(slowPlugin(), { gzip: true }), 'targets=linux-amd64');
    await bob.waitUntil(res.body.id, (d) => d.targets['linux-amd64'].status === 'running', 60_000);
    const mounts = await eventually(
      async () => {
        const [c] = await containersOf(res.body.id, 'build');
        const found = (
          c
            ? ((
                await docker
                  .getContainer(c.Id)
                  .inspect()
                  .catch(() => undefined)
              )?.Mounts ?? [])
            : []
        ) as { Name?: string; Destination: string }[];
        return found.length ? found : undefined;
      },
      { timeoutMs: 30_000, message: 'the build container and its mounts' },
    );
    expect(mounts.find((m) => m.Destination === '/cache')?.Name).toBe(bobCache);
    expect(mounts.map((m) => m.Name)).not.toContain(aliceCache);
    await bob.request('DELETE', `/v1/builds/${res.body.id}`);
    await bob.waitFor(res.body.id);
  });
});

describe('per-tenant limit on queued and running builds (2 here)', () => {
  it('answers 429 too_many_builds to a third active build, counts each tenant apart, and frees a place when a build ends', async () => {
    const slow = await tarOf(slowPlugin(), { gzip: true });
    const first = await alice.submit(slow, 'targets=linux-amd64');
    const second = await alice.submit(slow, 'targets=linux-amd64');
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    const blobsBefore = await filesUnder(path.join(config.dataDir, 'blobs', 'tmp'));

    const third = await alice.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64&name=third');
    expect(third.status).toBe(429);
    expect(third.body.error.code).toBe('too_many_builds');
    expect(third.body.error.message).toMatch(
      new RegExp(`Tenant ${ALICE.tenant} has 2 builds queued, running or uploading; the limit is 2`),
    );
    expect(await filesUnder(path.join(config.dataDir, 'blobs', 'tmp'))).toEqual(blobsBefore);

    // Bob is not held back by Alice's builds.
    const bobs = await bob.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64&name=bobs');
    expect(bobs.status).toBe(202);

    // Canceling one of Alice's builds gives her a place back.
    expect((await alice.request('DELETE', `/v1/builds/${first.body.id}`)).status).toBe(202);
    const again = await alice.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64&name=again');
    expect(again.status, JSON.stringify(again.body)).toBe(202);

    await alice.request('DELETE', `/v1/builds/${second.body.id}`);
    for (const id of [first.body.id, second.body.id]) expect(['canceled', 'failed']).toContain((await alice.waitFor(id)).status);
    const againDoc = await alice.waitFor(again.body.id);
    expect(againDoc.status, JSON.stringify(againDoc.targets)).toBe('succeeded');
    expect((await bob.waitFor(bobs.body.id)).status).toBe('succeeded');
    for (const id of [first.body.id, second.body.id, again.body.id, bobs.body.id])
      expect(await containersLeft(docker, [`org.plugforge.build=${id}`])).toEqual([]);
  });

  it('keeps concurrent submissions within the limit', async () => {
    const source = await tarOf(slowPlugin(), { gzip: true });
    const results = await Promise.all(Array.from({ length: 5 }, () => bob.submit(source, 'targets=linux-amd64')));
    const accepted = results.filter((r) => r.status === 202);
    expect(accepted.length).toBeLessThanOrEqual(2);
    expect(results.filter((r) => r.status === 429).length).toBe(5 - accepted.length);
    for (const r of accepted) await bob.request('DELETE', `/v1/builds/${r.body.id}`);
    for (const r of accepted) await bob.waitFor(r.body.id);
  });
});

describe('without tokens', () => {
  it('serves every caller as tenant "public", and keeps a named tenant\'s build hidden (404)', async () => {
    const open = await startService('api', { ...config, port: 0, tenancy: { maxActiveBuilds: 20, maxRunningBuilds: 0, share: 1 } });
    try {
      const client = new TenantClient(`http://127.0.0.1:${open.port}`, undefined);
      expect((await client.get('/v1/toolchains')).status).toBe(200);
      const ids = await redis.zrange(`pf:builds:${ALICE.tenant}`, 0, '-1');
      expect(ids.length).toBeGreaterThan(0);
      const res = await client.get(`/v1/builds/${ids[0]}`);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('build_not_found');
    } finally {
      await open.stop();
    }
  });
});
