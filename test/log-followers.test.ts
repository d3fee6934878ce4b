import http from 'node:http';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGET_IDS } from '../src/targets.js';
import { requireRedis, testConfig } from './support/env.js';
import { FakeRuntime } from './support/fake-runtime.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/** Log follows hold a Redis connection each: one API process serves a capped number at once. */
let redis: Redis;
let service: RunningService;
let api: ApiClient;
const runtime = new FakeRuntime(() => ({ runMs: 60_000, output: 'compiling\n' }));
const images = TARGET_IDS.map((target) => ({ go: '1.22.12', target, image: `plugforge/build:1.22.12-${target}`, id: 'fake', size: 1, created: '' }));

beforeAll(async () => {
  redis = await requireRedis();
  service = await startService('serve', await testConfig({ PLUGFORGE_MAX_LOG_FOLLOWERS: '2' }), { runtime, images });
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

function follow(id: string): Promise<{ status: number; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${api.base}/v1/builds/${id}/logs?follow=1`, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

describe('log followers', () => {
  it('serves up to PLUGFORGE_MAX_LOG_FOLLOWERS follows at once, answers 503 too_many_followers past it, and frees a place when a client leaves', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64');
    const id = res.body.id as string;
    const a = await follow(id);
    const b = await follow(id);
    expect([a.status, b.status]).toEqual([200, 200]);
    const refused = await api.get(`/v1/builds/${id}/logs?follow=1`);
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('too_many_followers');
    // Reading without follow is not capped.
    expect((await api.get(`/v1/builds/${id}/logs`)).status).toBe(200);
    a.close();
    const until = Date.now() + 10_000;
    let again = await follow(id);
    while (again.status !== 200 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      again = await follow(id);
    }
    expect(again.status).toBe(200);
    again.close();
    b.close();
    await api.request('DELETE', `/v1/builds/${id}`);
  });
});
