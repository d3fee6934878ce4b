import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGET_IDS, TARGETS } from '../src/contract/targets.js';
import { testConfig } from './support/env.js';
import { FakeRuntime, fakeElf } from '../src/runtime/fake-runtime.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { freePort } from './support/free-port.js';
import { eventually } from './support/eventually.js';

/** Redis going away under a running service: the API answers 503, the worker reconnects. */
let port = 0;
let dir = '';
let redis: ChildProcess | undefined;
let service: RunningService;
let api: ApiClient;

async function startRedis(): Promise<void> {
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--dir', dir], {
    stdio: 'ignore',
  });
  const failed = new Promise<never>((_, reject) => {
    redis!.once('error', (err) =>
      reject(
        new Error(
          `This test starts its own redis-server and could not (${err.message}). Install it: apt-get install redis-server (./scripts/test does).`,
        ),
      ),
    );
  });
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.destroy();
        resolve(true);
      });
      sock.on('error', () => resolve(false));
    });
  const up = eventually(listening, { timeoutMs: 10_000, message: 'redis-server listening' });
  // Whichever comes second is of no interest.
  failed.catch(() => undefined);
  up.catch(() => undefined);
  await Promise.race([failed, up]);
}

async function stopRedis(): Promise<void> {
  if (!redis || redis.exitCode !== null) return;
  const exited = new Promise((r) => redis!.once('exit', r));
  redis.kill('SIGKILL');
  await exited;
}

beforeAll(async () => {
  port = await freePort();
  dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-redis-'));
  await startRedis();
  const runtime = new FakeRuntime((spec) => ({ artifact: fakeElf(TARGETS[spec.target].elfClass, TARGETS[spec.target].elfMachine) }));
  const images = TARGET_IDS.map((target) => ({
    go: '1.22.12',
    target,
    image: `plugforge/build:1.22.12-${target}`,
    id: 'x',
    size: 1,
    created: '',
  }));
  service = await startService('serve', await testConfig({ PLUGFORGE_REDIS_URL: `redis://127.0.0.1:${port}` }), { runtime, images });
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
});

afterAll(async () => {
  await service?.stop();
  await stopRedis();
});

describe('when Redis is down', () => {
  it('the API answers 503 with a code instead of hanging, and recovers with Redis', async () => {
    const source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    expect((await api.submit(source, 'targets=linux-amd64')).status).toBe(202);

    await stopRedis();
    const started = Date.now();
    const refused = await api.submit(source, 'targets=linux-amd64');
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('redis_unavailable');
    expect(Date.now() - started).toBeLessThan(5_000);
    const ready = await api.get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.redis).toMatch(/unreachable/);

    await startRedis();
    // The worker reconnects and reports in again; the API accepts and the build runs.
    await eventually(async () => (await api.get('/readyz')).status === 200, {
      timeoutMs: 30_000,
      intervalMs: 250,
      message: '/readyz answering 200',
    });
    expect((await api.get('/readyz')).status).toBe(200);
    const again = await api.submit(source, 'targets=linux-amd64');
    expect(again.status).toBe(202);
    expect((await api.waitFor(again.body.id, undefined, 30_000)).status).toBe('succeeded');
  });
});
