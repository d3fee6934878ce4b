import http from 'node:http';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallbackDeliveries } from '../src/api/callback-deliveries.js';
import { createApp } from '../src/api/app.js';
import { BuildRepository } from '../src/builds/build-repository.js';
import { createLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics.js';
import type { BuildQueue } from '../src/queue/build-queue.js';
import { CancelChannel } from '../src/queue/cancel-channel.js';
import { WorkerRegistry } from '../src/queue/worker-registry.js';
import { FsBlobStore } from '../src/store/fs-blob-store.js';
import { TARGET_IDS } from '../src/contract/targets.js';
import { requireRedis, testConfig } from './support/env.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/**
 * A build whose record was written but whose jobs could not be queued (BullMQ refused, Redis
 * went away between the two writes): nothing would ever run it, so it must not stay
 * `queued` for ever, where retention, which sweeps finished builds, would never reach it.
 */
let redis: Redis;
let server: http.Server;
let api: ApiClient;

beforeAll(async () => {
  redis = await requireRedis();
  const config = await testConfig();
  const registry = WorkerRegistry.forQueue(redis, config.queueName);
  const images = TARGET_IDS.map((target) => ({
    go: '1.22.12',
    target,
    image: `plugforge/build:1.22.12-${target}`,
    id: 'x',
    size: 1,
    created: '',
  }));
  await registry.report({
    id: 'w',
    hostname: 'h',
    concurrency: 1,
    startedAt: '',
    reportedAt: '',
    dockerReachable: true,
    imageRepo: config.imageRepo,
    images,
  });
  const queue = {
    enqueue: async () => {
      throw new Error('OOM command not allowed when used memory > maxmemory');
    },
    enqueueDependencies: async () => {
      throw new Error('OOM command not allowed when used memory > maxmemory');
    },
  } as unknown as BuildQueue;
  const store = new FsBlobStore(path.join(config.dataDir, 'blobs'));
  await store.init();
  const repo = new BuildRepository(redis);
  const app = createApp({
    config,
    redis,
    repo,
    deliveries: new CallbackDeliveries(redis, repo, config, createLogger('silent')),
    queue,
    registry,
    cancel: CancelChannel.forQueue(config.queueName),
    store,
    metrics: createMetrics(),
    log: createLogger('silent'),
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  api = new ApiClient(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  redis?.disconnect();
});

describe('a build that could not be queued', () => {
  it('is refused with an error, and its record ends failed (enqueue_failed), not queued for ever', async () => {
    const name = `unqueued-${Date.now()}`;
    const started = Date.now() - 1000;
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), `targets=linux-amd64,linux-arm64&name=${name}`);
    expect(res.status, JSON.stringify(res.body)).toBe(500);
    // The build's id was never answered: find its record among the tenant's newest.
    const ids = await redis.zrangebyscore('pf:builds:public', String(started), '+inf');
    const docs = await Promise.all(ids.map(async (id) => (await api.get(`/v1/builds/${id}`)).body));
    const doc = docs.find((d) => d.name === name);
    expect(doc, JSON.stringify({ ids, body: res.body })).toBeDefined();
    expect(doc.status).toBe('failed');
    expect(doc.finishedAt).toBeTruthy();
    for (const t of ['linux-amd64', 'linux-arm64']) {
      expect(doc.targets[t].status).toBe('failed');
      expect(doc.targets[t].error).toMatchObject({ code: 'enqueue_failed', retryable: true });
    }
  });
});
