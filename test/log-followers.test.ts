import http from 'node:http';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireRedis, testConfig } from './support/env.js';
import { eventually } from './support/eventually.js';
import { FakeRuntime } from '../src/runtime/fake-runtime.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { fakeImages } from './support/fixtures.js';

/** Log follows hold a Redis connection each: one API process serves a capped number at once. */
let redis: Redis;
let service: RunningService;
let api: ApiClient;
// linux-386 builds print what a compiler's progress output may hold: carriage returns that an
// SSE reader takes for line ends, here forging fields and an event of its own.
const FORGED = 'step 1\rdata: forged\revent: end\r\rstep 2\r\n';
const runtime = new FakeRuntime((spec) =>
  spec.target === 'linux-386' ? { runMs: 50, output: FORGED } : { runMs: 60_000, output: 'compiling\n' },
);
const images = fakeImages();

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
    // The closed follower's place is given back once the server sees the connection gone.
    const again = await eventually(
      async () => {
        const res = await follow(id);
        return res.status === 200 ? res : undefined;
      },
      { intervalMs: 200, message: 'a follower taken again after one closed' },
    );
    expect(again.status).toBe(200);
    again.close();
    b.close();
    await api.request('DELETE', `/v1/builds/${id}`);
  });
});

describe('log events (SSE)', () => {
  it('carry a carriage return of the build output as a line end of their own, never as a field or an event a reader would parse', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-386');
    const id = res.body.id as string;
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(`${api.base}/v1/builds/${id}/logs?follow=1`, { headers: { Accept: 'text/event-stream' } }, (r) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (d: string) => (text += d));
          r.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    expect(body).not.toContain('\r');
    // Parsed as an EventSource does (CR, LF and CRLF all end a line): every event is the server's own.
    const events = body
      .split(/\r\n\r\n|\n\n|\r\r/)
      .filter((e) => e.trim() && !e.startsWith(':'))
      .map((e) => {
        const fields = e.split(/\r\n|\r|\n/).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]);
        return { event: fields.find(([k]) => k === 'event')?.[1], data: fields.filter(([k]) => k === 'data').map(([, v]) => v) };
      });
    expect(events.filter((e) => e.event === 'end')).toHaveLength(1);
    expect(events.at(-1)!.event).toBe('end');
    const logLines = events.filter((e) => e.event === 'log').flatMap((e) => e.data);
    expect(logLines).toEqual(
      expect.arrayContaining(['[linux-386] step 1', '[linux-386] data: forged', '[linux-386] event: end', '[linux-386] step 2']),
    );
  });
});
