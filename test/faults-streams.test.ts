import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker, requireImages, requireRedis } from './support/env.js';
import { slowPlugin } from './support/fixtures.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { startServe, type ServeProcess } from './support/serve-process.js';
import { eventually, EventuallyTimeout } from './support/eventually.js';

/**
 * Clients that give up at every point of every streaming route, against one `plugforge
 * serve` process (the compiled CLI, as a user runs it): downloads of artifacts.tar.gz,
 * bundle.tar.gz and single artifacts cut off at random offsets, log follows (plain and
 * SSE) closed mid-stream, uploads cut at 0 %, 50 % and 99 %. The process must never end,
 * its memory must come back, nothing half-written may stay in the store, and a build
 * submitted afterwards must succeed.
 */
let redis: Redis;
let child: ChildProcess;
let api: ApiClient;
let port = 0;
let dataDir = '';
let plugin: any;
let exe: any;
let serve: ServeProcess;

const SERVER_PLUGIN: Record<string, string> = {
  'go.mod': 'module example.com/mmfault\n\ngo 1.22\n',
  'main.go': 'package main\n\nfunc main() {}\n',
  'plugin.json': JSON.stringify({
    id: 'com.example.mmfault',
    name: 'MM fault',
    version: '0.1.0',
    server: { executable: 'server/dist/plugin-linux-amd64' },
  }),
  'assets/big.bin': randomBytes(512 * 1024).toString('base64'),
};

function rssMb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024);
}

/** GETs `route` and hangs up after `cutAfter` bytes of the body (0: right after the headers). */
function abortedGet(route: string, cutAfter: number, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: route, headers }, (res) => {
      let seen = 0;
      const cut = () => {
        req.destroy();
        resolve(res.statusCode ?? 0);
      };
      if (cutAfter === 0) return cut();
      res.on('data', (c: Buffer) => {
        seen += c.length;
        if (seen >= cutAfter) cut();
      });
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
  });
}

/** Sends `body` with its full Content-Length but hangs up after `fraction` of it. */
function abortedUpload(body: Buffer, fraction: number): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/v1/builds',
      method: 'POST',
      headers: { 'Content-Type': 'application/gzip', 'Content-Length': String(body.length) },
    });
    req.on('error', () => resolve());
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    const cut = Math.floor(body.length * fraction);
    req.write(body.subarray(0, cut), () => {
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 20);
    });
  });
}

/** Runs `count` calls of `fn`, `parallel` at a time; a call that hangs (a server gone mid-request) is given up after 15 s. */
async function storm(count: number, parallel: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) await Promise.race([fn(next++), new Promise((r) => setTimeout(r, 15_000).unref())]);
    }),
  );
}

const alive = () => serve.alive();
const output = () => serve.output();

beforeAll(async () => {
  redis = await requireRedis();
  await requireImages(await requireDocker());
  serve = await startServe({ PLUGFORGE_REUSE: 'off', PLUGFORGE_WORKER_CONCURRENCY: '2' });
  ({ child, port, dataDir, api } = serve);
  const p = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'host=gotify');
  const e = await api.submit(await tarOf(SERVER_PLUGIN, { gzip: true }), 'mode=exe&targets=linux-amd64,linux-arm64');
  plugin = await api.waitFor(p.body.id, undefined, 600_000);
  exe = await api.waitFor(e.body.id, undefined, 600_000);
  expect(plugin.status).toBe('succeeded');
  expect(exe.status).toBe('succeeded');
}, 900_000);

afterAll(async () => {
  // Let it stop as a user's Ctrl-C would: it finishes what it runs and removes its containers.
  await serve?.stop();
  redis?.disconnect();
}, 90_000);

describe('clients that go away mid-stream', () => {
  it('200 aborted downloads each of artifacts.tar.gz and bundle.tar.gz, 100 of single artifacts, 300 aborted log follows (200 of them SSE) and 50 aborted uploads: the service stays up, its memory comes back, nothing half-written stays', async () => {
    const tarSize = (await api.bytes(`/v1/builds/${plugin.id}/artifacts.tar.gz`)).bytes.length;
    const bundleSize = (await api.bytes(`/v1/builds/${exe.id}/bundle.tar.gz`)).bytes.length;
    const artifactSize = plugin.targets['linux-arm64'].artifact.size;
    const offset = (size: number) => Math.floor(Math.random() * size * 0.95);

    // A slow build to follow while it runs.
    const slow = await api.submit(await tarOf(slowPlugin(3000), { gzip: true }), 'targets=linux-amd64');
    const source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    const bigSource = await tarOf({ ...GOTIFY_PLUGIN, 'blob.bin': randomBytes(4 * 1024 * 1024) }, { gzip: true });
    const storms = (n: number) => [
      storm(n, 8, () => abortedGet(`/v1/builds/${plugin.id}/artifacts.tar.gz`, offset(tarSize))),
      storm(n, 8, () => abortedGet(`/v1/builds/${exe.id}/bundle.tar.gz`, offset(bundleSize))),
      storm(n / 2, 4, () => abortedGet(`/v1/builds/${plugin.id}/artifacts/linux-arm64`, offset(artifactSize))),
      storm(n / 2, 4, () => abortedGet(`/v1/builds/${slow.body.id}/logs?follow=1`, 1 + Math.floor(Math.random() * 200))),
      storm(n, 4, () =>
        abortedGet(`/v1/builds/${slow.body.id}/logs?follow=1`, 1 + Math.floor(Math.random() * 200), { Accept: 'text/event-stream' }),
      ),
      storm(n / 4, 4, (i) => abortedUpload(i % 2 ? bigSource : source, [0, 0.5, 0.99][i % 3]!)),
    ];

    // Where it started: after two full rounds of every kind of abort, so what the runtime
    // and the allocator keep once grown to this load is in the baseline (the first round
    // grows the process by some 20 to 40 MB here, run alone or in parallel with builds, and
    // after one round alone the baseline was seen 35 MB lower in one run than in another);
    // a further round as large must then leave it within 20 MB of that: nothing held per
    // aborted stream.
    await Promise.all(storms(200));
    await Promise.all(storms(200));
    // The baseline once the process has settled: no aborted upload's temp file left, and its
    // RSS steady (within 1 MB) over half a second; taken as it is after 10 s otherwise.
    const pid = child.pid!;
    const tempDir = path.join(dataDir, 'blobs', 'tmp');
    let before = Number.NaN;
    const settled = async () => {
      const previous = before;
      before = await rssMb(pid);
      return Math.abs(before - previous) < 1 && (await readdir(tempDir)).length === 0;
    };
    await eventually(settled, { timeoutMs: 10_000, intervalMs: 500 }).catch((err: unknown) => {
      if (!(err instanceof EventuallyTimeout)) throw err;
    });

    await Promise.all(storms(200));

    expect(alive(), output()).toBe(true);
    expect(child.pid).toBe(pid);
    // Nothing half-written: every aborted upload's temp file is gone within seconds (well
    // before the 30 s idle limit would cut a stalled upload off).
    await eventually(async () => (await readdir(tempDir)).length === 0, {
      timeoutMs: 5_000,
      intervalMs: 200,
      message: () => `no temp file left in ${tempDir}`,
    });
    expect(await readdir(tempDir)).toEqual([]);
    expect((await api.get('/healthz')).status).toBe(200);
    expect(output()).not.toMatch(/ERR_STREAM_PREMATURE_CLOSE|uncaught|unhandled/i);

    // The slow build ends truthfully, and a new build succeeds.
    const slowDoc = await api.waitFor(slow.body.id, undefined, 600_000);
    expect(slowDoc.status).toBe('succeeded');
    const after = await api.submit(source, 'targets=linux-amd64&name=after');
    expect((await api.waitFor(after.body.id, undefined, 300_000)).status).toBe('succeeded');

    // Memory comes back to within 20 MB of where it started (allowing the collector its time).
    let rss = await rssMb(pid);
    const within = async () => (rss = await rssMb(pid)) <= before + 20;
    await eventually(within, { timeoutMs: 60_000, intervalMs: 2_000 }).catch((err: unknown) => {
      if (!(err instanceof EventuallyTimeout)) throw err;
    });
    console.log(`faults-streams: RSS before ${before.toFixed(1)} MB, after ${rss.toFixed(1)} MB`);
    expect(rss).toBeLessThan(before + 20);
  }, 900_000);
});
