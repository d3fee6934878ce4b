import { createHash, randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { PHASES } from '../src/builds/build-document.js';
import { containersLeft, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { TenantClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/**
 * The same build is never run twice (docs/decisions.md): real Redis, real Docker, real Go.
 * Two tenants with fresh names, so each starts with an empty build cache of its own: their
 * first builds are cold, and comparing them shows that the same key gives the same bytes.
 */
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const suffix = randomBytes(3).toString('hex');
const ALICE = { tenant: `reuse-alice-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const BOB = { tenant: `reuse-bob-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const QUERY = 'go=1.22&host=gotify&targets=linux-amd64,linux-arm64';

let redis: Redis;
let docker: Docker;
let service: RunningService;
let alice: TenantClient;
let bob: TenantClient;

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  await requireImages(docker);
  service = await startService(
    'serve',
    await testConfig({
      PLUGFORGE_REUSE: 'tenant',
      PLUGFORGE_TOKENS: `${ALICE.tenant}:${sha256(ALICE.token)},${BOB.tenant}:${sha256(BOB.token)}`,
    }),
  );
  const base = `http://127.0.0.1:${service.port}`;
  alice = new TenantClient(base, ALICE.token);
  bob = new TenantClient(base, BOB.token);
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
  for (const v of (await docker?.listVolumes())?.Volumes ?? []) {
    if (v.Name.includes(suffix))
      await docker
        .getVolume(v.Name)
        .remove({ force: true })
        .catch(() => undefined);
  }
});

/** The plugin with a comment of its own, so each case starts from a source no earlier build had. */
async function variant(label: string): Promise<Buffer> {
  return tarOf({ ...GOTIFY_PLUGIN, 'variant.go': `package main\n\n// ${label} ${suffix}\n` }, { gzip: true });
}

async function logText(client: TenantClient, id: string): Promise<string> {
  return (await client.request('GET', `/v1/builds/${id}/logs`)).text;
}

const shaOf = (doc: any, t: string) => doc.targets[t].artifact.sha256 as string;

describe('an identical submission', () => {
  let first: any;

  beforeAll(async () => {
    const res = await alice.submit(await variant('first'), QUERY);
    expect(res.status).toBe(202);
    await alice.waitFor(res.body.id);
    // The result is recorded before the containers go; the teardown's time follows it.
    first = await alice.waitUntil(
      res.body.id,
      (d) => ['linux-amd64', 'linux-arm64'].every((t) => d.targets[t]?.phases?.teardown !== undefined),
      30_000,
    );
  }, 300_000);

  it('of a build that ran says where its time went, phase by phase', () => {
    expect(first.status).toBe('succeeded');
    for (const t of ['linux-amd64', 'linux-arm64']) {
      const phases = first.targets[t].phases;
      expect(Object.keys(phases).every((p) => (PHASES as readonly string[]).includes(p))).toBe(true);
      for (const p of ['queueWait', 'create', 'sourceIn', 'compile', 'artifactOut', 'loadCheck', 'teardown'])
        expect(phases[p], `${t} ${p}`).toBeGreaterThanOrEqual(0);
      expect(phases.compile).toBeGreaterThan(100);
      // The phases up to the result are the target's run: the queue wait is before it, the teardown after.
      const ran = Object.entries(phases)
        .filter(([p]) => p !== 'queueWait' && p !== 'teardown')
        .reduce((sum, [, ms]) => sum + (ms as number), 0);
      expect(ran).toBeLessThanOrEqual(first.targets[t].durationMs + 50);
    }
  });

  it('answers at once with the artifacts of the build that ran (reusedFrom), downloadable as usual, and runs nothing', async () => {
    const res = await alice.submit(await variant('first'), QUERY);
    expect(res.status).toBe(202);
    expect(res.body.reusedFrom).toBe(first.id);
    expect(res.body.id).not.toBe(first.id);
    expect(res.body.status).toBe('succeeded');
    for (const t of ['linux-amd64', 'linux-arm64']) {
      const target = res.body.targets[t];
      expect(target).toMatchObject({
        status: 'succeeded',
        durationMs: 0,
        artifact: { sha256: shaOf(first, t), size: first.targets[t].artifact.size },
        verify: first.targets[t].verify,
      });
      expect(target.phases).toBeUndefined();
      const got = await alice.bytes(`/v1/builds/${res.body.id}/artifacts/${t}`);
      expect(got.status).toBe(200);
      expect(sha256(got.bytes)).toBe(shaOf(first, t));
      expect(got.headers.get('x-plugforge-sha256')).toBe(shaOf(first, t));
    }
    expect(await logText(alice, res.body.id)).toContain(`identical to build ${first.id}`);
    expect(await containersLeft(docker, [`org.plugforge.build=${res.body.id}`])).toEqual([]);
  });

  it("of another tenant's build runs by default, and that cold build gives the same bytes", async () => {
    const res = await bob.submit(await variant('first'), QUERY);
    expect(res.status).toBe(202);
    expect(res.body.reusedFrom).toBeUndefined();
    const doc = await bob.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status).toBe('succeeded');
    // Both tenants' caches started empty: two cold builds of the same key, the same sha256.
    for (const t of ['linux-amd64', 'linux-arm64']) expect(shaOf(doc, t), t).toBe(shaOf(first, t));
  }, 320_000);
});

describe('identical submissions at once', () => {
  it('share one run: the second follows the first and ends with its artifacts', async () => {
    const x = await alice.submit(await variant('together'), QUERY);
    const y = await alice.submit(await variant('together'), QUERY);
    expect(y.body.reusedFrom).toBe(x.body.id);
    expect(['queued', 'running']).toContain(y.body.status);
    const [dx, dy] = await Promise.all([alice.waitFor(x.body.id), alice.waitFor(y.body.id)]);
    expect(dx.status).toBe('succeeded');
    expect(dy.status).toBe('succeeded');
    for (const t of ['linux-amd64', 'linux-arm64']) expect(shaOf(dy, t)).toBe(shaOf(dx, t));
    expect(await logText(alice, y.body.id)).toContain(`identical to build ${x.body.id}`);
  }, 120_000);

  it('end canceled when the run they share is canceled, and the next submission runs again', async () => {
    const x = await alice.submit(await variant('canceled'), QUERY);
    const y = await alice.submit(await variant('canceled'), QUERY);
    expect(y.body.reusedFrom).toBe(x.body.id);
    expect((await alice.request('DELETE', `/v1/builds/${x.body.id}`)).status).toBe(202);
    const dy = await alice.waitFor(y.body.id, undefined, 60_000);
    expect(dy.status).toBe('canceled');
    expect(dy.targets['linux-amd64'].error.message).toContain(`${x.body.id} whose run this build shared was canceled`);
    const z = await alice.submit(await variant('canceled'), QUERY);
    expect(z.body.reusedFrom).toBeUndefined();
    await alice.request('DELETE', `/v1/builds/${z.body.id}`);
    await alice.waitFor(z.body.id, undefined, 60_000);
  }, 120_000);
});
