import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkerRegistry, type WorkerReport } from '../src/queue/worker-registry.js';
import { requireRedis } from './support/env.js';
import { eventually } from './support/eventually.js';

let redis: Redis;

beforeAll(async () => {
  redis = await requireRedis();
});

afterAll(() => {
  redis?.disconnect();
});

const report = (id: string): WorkerReport => ({
  id,
  hostname: 'h',
  concurrency: 1,
  startedAt: '',
  reportedAt: '',
  dockerReachable: true,
  imageRepo: 'plugforge/build',
  images: [],
});

describe('WorkerRegistry (real Redis)', () => {
  it("keeps each installation's workers apart, and its instance id", async () => {
    const q = randomBytes(4).toString('hex');
    const a = WorkerRegistry.forQueue(redis, `a-${q}`);
    const b = WorkerRegistry.forQueue(redis, `b-${q}`);
    await a.report(report('wa'));
    await b.report(report('wb'));
    expect((await a.live()).map((w) => w.id)).toEqual(['wa']);
    expect((await b.live()).map((w) => w.id)).toEqual(['wb']);
    expect(await a.instanceId()).not.toBe(await b.instanceId());
    await a.remove('wa');
    expect(await a.live()).toEqual([]);
  });

  it('lists live workers from its own set, not by scanning the keyspace: a worker that stops reporting drops out', async () => {
    const q = randomBytes(4).toString('hex');
    const r = new WorkerRegistry(redis, `pf:${q}`, 1);
    await r.report(report('short'));
    await new WorkerRegistry(redis, `pf:${q}`, 60).report(report('long'));
    // Lookalike keys of no registry are never read.
    await redis.set(`pf:${q}:worker:stray`, JSON.stringify(report('stray')), 'EX', 60);
    expect((await r.live()).map((w) => w.id).sort()).toEqual(['long', 'short']);
    // Its report lives 1 s: gone by 1.5 s.
    await eventually(async () => (await r.live()).length === 1, {
      timeoutMs: 1_500,
      intervalMs: 100,
      message: 'the short-lived report dropping out',
    });
    expect((await r.live()).map((w) => w.id)).toEqual(['long']);
    expect(await redis.zrange(`pf:${q}:workers`, '0', '-1')).toEqual(['long']);
  });
});
