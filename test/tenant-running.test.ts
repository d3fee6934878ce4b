import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { PARKED_RECHECK_MS } from '../src/queue/tenant-running.js';
import { TARGETS } from '../src/contract/targets.js';
import type { FakeSpec } from '../src/runtime/fake-runtime.js';
import { requireRedis, testConfig } from './support/env.js';
import { eventually } from './support/eventually.js';
import { FakeRuntime, fakeElf } from '../src/runtime/fake-runtime.js';
import { ApiClient, type ApiResponse } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { fakeImages } from './support/fixtures.js';

/**
 * The per-tenant running limit (PLUGFORGE_TENANT_MAX_RUNNING_BUILDS) on real Redis and
 * BullMQ with a scripted runtime: a capped tenant's builds run one after the other, each
 * starting as soon as the previous one ends, while another tenant's build runs beside them.
 */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const suffix = randomBytes(3).toString('hex');
const ALPHA = { tenant: `run-alpha-${suffix}`, token: `pf_${randomBytes(18).toString('base64url')}` };
const BETA = { tenant: `run-beta-${suffix}`, token: `pf_${randomBytes(18).toString('base64url')}` };
/** How long each build container of these tests runs; the loading probe exits at once. */
const RUN_MS = 1_500;

class TenantClient extends ApiClient {
  constructor(
    baseUrl: string,
    private readonly token: string,
  ) {
    super(baseUrl);
  }

  override request<T = any>(
    method: string,
    p: string,
    body?: Buffer | string,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    return super.request<T>(method, p, body, { Authorization: `Bearer ${this.token}`, ...headers });
  }
}

const runtime = new FakeRuntime((spec: FakeSpec) => ({
  runMs: spec.kind === 'verify' ? 0 : RUN_MS,
  artifact: fakeElf(TARGETS[spec.target].elfClass, TARGETS[spec.target].elfMachine),
}));
const images = fakeImages();

let redis: Redis;
let service: RunningService;
let alpha: TenantClient;
let beta: TenantClient;
let source: Buffer;

beforeAll(async () => {
  redis = await requireRedis();
  const config = await testConfig({
    PLUGFORGE_WORKER_CONCURRENCY: '4',
    PLUGFORGE_TOKENS: `${ALPHA.tenant}:${sha256(ALPHA.token)},${BETA.tenant}:${sha256(BETA.token)}`,
    PLUGFORGE_TENANT_MAX_RUNNING_BUILDS: '1',
  });
  service = await startService('serve', config, { runtime, images });
  const base = `http://127.0.0.1:${service.port}`;
  alpha = new TenantClient(base, ALPHA.token);
  beta = new TenantClient(base, BETA.token);
  source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

const TWO_TARGETS = 'targets=linux-amd64,linux-386';

/** When a build's first target started and its last one finished. */
function span(doc: any): { start: number; end: number } {
  const targets = Object.values(doc.targets) as any[];
  return {
    start: Math.min(...targets.map((t) => Date.parse(t.startedAt))),
    end: Math.max(...targets.map((t) => Date.parse(t.finishedAt))),
  };
}

/**
 * Replays the fake runtime's container events and returns the largest number of distinct
 * builds, among `buildIds`, that had a container at the same moment.
 */
function mostBuildsAtOnce(buildIds: string[]): number {
  const alive = new Map<string, number>();
  let most = 0;
  for (const event of runtime.events) {
    const [what, jobId = ''] = event.split(' ');
    const build = buildIds.find((id) => jobId.startsWith(`${id}-`));
    if (!build || (what !== 'create' && what !== 'destroy')) continue;
    alive.set(build, (alive.get(build) ?? 0) + (what === 'create' ? 1 : -1));
    most = Math.max(most, [...alive.values()].filter((n) => n > 0).length);
  }
  return most;
}

async function submit(client: TenantClient, query: string): Promise<string> {
  const res = await client.submit(source, query);
  expect(res.status, res.text).toBe(202);
  return res.body.id as string;
}

describe('per-tenant running limit (real Redis + BullMQ, fake runtime)', () => {
  it('runs a capped tenant’s builds one at a time, next as soon as one ends, beside another tenant’s', async () => {
    const ids = [
      await submit(alpha, `name=one&${TWO_TARGETS}`),
      await submit(alpha, `name=two&${TWO_TARGETS}`),
      await submit(alpha, `name=three&${TWO_TARGETS}`),
    ];
    const other = await submit(beta, `name=other&${TWO_TARGETS}`);

    // The builds beyond the limit wait in the queue: queued, not failed.
    await alpha.waitUntil(ids[0]!, (d) => d.status === 'running', 10_000);
    expect((await alpha.get(`/v1/builds/${ids[2]}`)).body.status).toBe('queued');

    const docs = await Promise.all(ids.map((id) => alpha.waitFor(id, undefined, 60_000)));
    const otherDoc = await beta.waitFor(other, undefined, 60_000);
    for (const doc of [...docs, otherDoc]) expect(doc.status).toBe('succeeded');
    // Parking does not use up attempts.
    for (const doc of docs) for (const t of Object.values(doc.targets) as any[]) expect(t.attempt).toBe(1);

    expect(mostBuildsAtOnce(ids)).toBe(1);
    const spans = docs.map(span).sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) {
      expect(spans[i]!.start).toBeGreaterThanOrEqual(spans[i - 1]!.end);
      // Woken when the previous build ended, not by the fallback recheck.
      expect(spans[i]!.start - spans[i - 1]!.end).toBeLessThan(PARKED_RECHECK_MS / 2);
    }
    // The other tenant's build ran while the first of the capped tenant's did.
    const first = spans[0]!;
    const beside = span(otherDoc);
    expect(beside.start).toBeLessThan(first.end);
    expect(beside.end).toBeGreaterThan(first.start);

    const waited = await alpha.get(`/v1/builds/${ids[2]}/logs`);
    expect(waited.text).toContain(`waiting: tenant ${ALPHA.tenant} has 1 build running`);
  });

  it('a build canceled while it waits does not hold up the next one', async () => {
    const first = await submit(alpha, 'name=first&targets=linux-amd64');
    await alpha.waitUntil(first, (d) => d.status === 'running', 10_000);
    const canceled = await submit(alpha, 'name=canceled&targets=linux-amd64');
    const last = await submit(alpha, 'name=last&targets=linux-amd64');
    // Both are parked before the cancel, so the cancel removes a delayed job.
    await waitForLog(alpha, last, 'waiting: tenant');
    await waitForLog(alpha, canceled, 'waiting: tenant');
    expect((await alpha.request('DELETE', `/v1/builds/${canceled}`)).status).toBe(202);

    const firstDoc = await alpha.waitFor(first, undefined, 30_000);
    const lastDoc = await alpha.waitFor(last, undefined, 30_000);
    expect(firstDoc.status).toBe('succeeded');
    expect(lastDoc.status).toBe('succeeded');
    expect((await alpha.get(`/v1/builds/${canceled}`)).body.status).toBe('canceled');
    expect(runtime.events.some((e) => e.includes(canceled))).toBe(false);
    expect(span(lastDoc).start - span(firstDoc).end).toBeLessThan(PARKED_RECHECK_MS / 2);
  });
});

async function waitForLog(client: TenantClient, id: string, text: string, timeoutMs = 10_000): Promise<void> {
  await eventually(async () => (await client.get(`/v1/builds/${id}/logs`)).text.includes(text), {
    timeoutMs,
    message: `build ${id} logging ${JSON.stringify(text)}`,
  });
}
