import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildRepository } from '../src/builds/build-repository.js';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { PlugforgeError } from '../src/errors/plugforge-error.js';
import { TARGET_IDS, TARGETS } from '../src/contract/targets.js';
import type { FakeSpec } from '../src/runtime/fake-runtime.js';
import { requireRedis, testConfig } from './support/env.js';
import { FakeRuntime, fakeElf, type FakeScript } from '../src/runtime/fake-runtime.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { fakeImages } from './support/fixtures.js';

/**
 * The queue and the worker with a scripted runtime (no Docker): retries, cancel and
 * parallelism, against a real Redis and BullMQ.
 */
let redis: Redis;
let service: RunningService;
let api: ApiClient;
let source: Buffer;
/** Per test: what each container does, keyed by the build's name option. */
const scripts = new Map<string, (spec: FakeSpec, attempt: number) => FakeScript>();
const runtime = new FakeRuntime((spec, attempt) => {
  const name = spec.artifactName.replace(/-linux-.*$/, '');
  const t = TARGETS[spec.target];
  return scripts.get(name)?.(spec, attempt) ?? { artifact: fakeElf(t.elfClass, t.elfMachine) };
});
const images = fakeImages();

beforeAll(async () => {
  redis = await requireRedis();
  service = await startService('serve', await testConfig({ PLUGFORGE_WORKER_CONCURRENCY: '4', PLUGFORGE_ATTEMPTS: '3' }), {
    runtime,
    images,
  });
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
  source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

const elfFor = (spec: FakeSpec) => fakeElf(TARGETS[spec.target].elfClass, TARGETS[spec.target].elfMachine);

describe('worker orchestration (real Redis + BullMQ, fake runtime)', () => {
  it('runs the four targets of a build in parallel', async () => {
    scripts.set('parallel', (spec) => ({ runMs: 600, artifact: elfFor(spec) }));
    const res = await api.submit(source, 'name=parallel');
    expect(res.status).toBe(202);
    const doc = await api.waitFor(res.body.id);
    expect(doc.status).toBe('succeeded');
    const spans = TARGET_IDS.map((t) => [Date.parse(doc.targets[t].startedAt), Date.parse(doc.targets[t].finishedAt)] as const);
    const lastStart = Math.max(...spans.map(([s]) => s));
    const firstEnd = Math.min(...spans.map(([, e]) => e));
    expect(lastStart).toBeLessThan(firstEnd);
  });

  it('retries a target whose engine failed, and succeeds on a later attempt', async () => {
    scripts.set('flaky', (spec, attempt) =>
      spec.target === 'linux-386' && spec.kind === 'build' && attempt < 3
        ? { createError: new PlugforgeError('docker_unavailable', 'The Docker engine is unreachable', { retryable: true }) }
        : { artifact: elfFor(spec) },
    );
    const res = await api.submit(source, 'name=flaky&targets=linux-amd64,linux-386');
    const doc = await api.waitFor(res.body.id, undefined, 60_000);
    expect(doc.status).toBe('succeeded');
    expect(doc.targets['linux-386'].attempt).toBe(3);
    expect(doc.targets['linux-amd64'].attempt).toBe(1);
    const logs = await api.get(`/v1/builds/${res.body.id}/logs?target=linux-386`);
    expect(logs.text).toContain('attempt 3 of 3');
  });

  it('retries a build container killed from outside (exit 137, not out of memory: an engine that stopped)', async () => {
    scripts.set('killed', (spec, attempt) => (attempt === 1 ? { exitCode: 137 } : { artifact: elfFor(spec) }));
    const res = await api.submit(source, 'name=killed&targets=linux-amd64');
    const doc = await api.waitFor(res.body.id, undefined, 60_000);
    expect(doc.status).toBe('succeeded');
    expect(doc.targets['linux-amd64'].attempt).toBe(2);
    const logs = await api.get(`/v1/builds/${res.body.id}/logs?target=linux-amd64`);
    expect(logs.text).toContain('killed from outside the build');
  });

  it('gives up after the configured attempts with the engine error, retryable', async () => {
    scripts.set('down', () => ({
      createError: new PlugforgeError('docker_unavailable', 'The Docker engine is unreachable', { retryable: true }),
    }));
    const res = await api.submit(source, 'name=down&targets=linux-arm64');
    const doc = await api.waitFor(res.body.id, undefined, 60_000);
    expect(doc.status).toBe('failed');
    expect(doc.targets['linux-arm64'].error).toMatchObject({ code: 'docker_unavailable', retryable: true });
    expect(doc.targets['linux-arm64'].error.message).toContain('gave up after 3 attempts');
  });

  it('does not retry a compile error', async () => {
    scripts.set('broken', () => ({ output: './plugin.go:1:1: expected package\n', exitCode: 1 }));
    const res = await api.submit(source, 'name=broken&targets=linux-amd64');
    const doc = await api.waitFor(res.body.id);
    expect(doc.status).toBe('failed');
    expect(doc.targets['linux-amd64']).toMatchObject({ attempt: 1, error: { code: 'compile_failed' } });
    // One build container started, once (the probe's, made while it compiled, never started).
    expect(runtime.events.filter((e) => e.startsWith('start') && e.includes(res.body.id))).toHaveLength(1);
  });

  it('cancels: running containers are killed and removed, every target ends canceled', async () => {
    scripts.set('slow', () => ({ runMs: 60_000 }));
    const res = await api.submit(source, 'name=slow');
    const id = res.body.id as string;
    await api.waitUntil(id, (d) => Object.values(d.targets).filter((t: any) => t.status === 'running').length >= 1);
    const del = await api.request('DELETE', `/v1/builds/${id}`);
    expect(del.status).toBe(202);
    expect(del.body.status).toBe('canceled');
    await api.waitUntil(id, () => runtime.alive().filter((c) => c.spec.buildId === id).length === 0, 10_000);
    const doc = (await api.get(`/v1/builds/${id}`)).body;
    for (const t of TARGET_IDS) expect(doc.targets[t].status).toBe('canceled');
    expect(runtime.events.filter((e) => e.startsWith('kill') && e.includes(id)).length).toBeGreaterThanOrEqual(1);
    const again = await api.request('DELETE', `/v1/builds/${id}`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('build_finished');
  });

  it('finds a cancel that pub/sub never delivered in the build state, and kills the running containers', async () => {
    scripts.set('unheard', () => ({ runMs: 60_000 }));
    const res = await api.submit(source, 'name=unheard&targets=linux-amd64,linux-arm64');
    const id = res.body.id as string;
    await api.waitUntil(id, (d) => Object.values(d.targets).every((t: any) => t.status === 'running'));
    // What DELETE does, without the message to the workers.
    expect(await new BuildRepository(redis).cancel(id, new Date().toISOString())).toHaveLength(2);
    await api.waitUntil(id, () => runtime.alive().filter((c) => c.spec.buildId === id).length === 0, 10_000);
    expect(runtime.events.filter((e) => e.startsWith('kill') && e.includes(id))).toHaveLength(2);
    const doc = (await api.get(`/v1/builds/${id}`)).body;
    expect(doc.status).toBe('canceled');
  });
});
