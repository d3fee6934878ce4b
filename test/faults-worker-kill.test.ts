import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import type { Config } from '../src/config.js';
import { REPO_ROOT, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { slowPlugin } from './support/fixtures.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { eventually, EventuallyTimeout } from './support/eventually.js';

const run = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'bin', 'plugforge.js');

/**
 * At-least-once delivery for real: a worker process is killed with SIGKILL in the middle
 * of a build; after a new worker starts, the build still succeeds and no container of it
 * is left on the engine.
 */
let redis: Redis;
let api: RunningService;
let client: ApiClient;
let config: Config;
const workers: ChildProcess[] = [];

function startWorker(): ChildProcess {
  const child = spawn(process.execPath, [CLI, 'worker'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PLUGFORGE_REDIS_URL: config.redisUrl,
      PLUGFORGE_QUEUE: config.queueName,
      PLUGFORGE_DATA_DIR: config.dataDir,
      PLUGFORGE_WORKER_CONCURRENCY: '2',
      PLUGFORGE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  workers.push(child);
  return child;
}

/**
 * Containers of the build: with a step, only the build containers of that step (build: the
 * compiling containers themselves, not their disks' holders nor the loading probes made beside them).
 */
async function buildContainers(buildId: string, step?: string): Promise<string[]> {
  const only = step ? ['--filter', 'label=org.plugforge.role=build', '--filter', `label=org.plugforge.step=${step}`] : [];
  const { stdout } = await run('docker', ['ps', '-a', '-q', '--filter', `label=org.plugforge.build=${buildId}`, ...only]);
  return stdout.split('\n').filter(Boolean);
}

beforeAll(async () => {
  if (!existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'main.js')))
    throw new Error('This test runs the compiled CLI: run npm run build first (./scripts/test does).');
  redis = await requireRedis();
  await requireImages(await requireDocker());
  config = await testConfig();
  api = await startService('api', config);
  client = new ApiClient(`http://127.0.0.1:${api.port}`);
});

afterAll(async () => {
  // Stopped as an operator would (SIGTERM): a worker lets its checks finish and removes its containers.
  await Promise.all(
    workers
      .filter((w) => w.exitCode === null && w.signalCode === null)
      .map(async (w) => {
        const exited = new Promise((r) => w.once('exit', r));
        w.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 90_000))]);
        if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      }),
  );
  await api?.stop();
  redis?.disconnect();
});

describe('a worker killed mid-build', () => {
  it('loses nothing: the build completes on a new worker and leaves no container', async () => {
    const first = startWorker();
    // Wait until the API sees the worker, then submit a build that compiles for a while.
    await eventually(async () => (await client.get('/readyz')).status === 200, { timeoutMs: 30_000, intervalMs: 250 }).catch(
      (err: unknown) => {
        if (!(err instanceof EventuallyTimeout)) throw err;
      },
    );
    const res = await client.submit(await tarOf(slowPlugin(), { gzip: true }), 'targets=linux-amd64,linux-arm64&name=crash');
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    await client.waitUntil(
      id,
      (d) => d.targets['linux-amd64'].status === 'running' && d.targets['linux-arm64'].status === 'running',
      60_000,
    );
    await eventually(async () => (await buildContainers(id, 'build')).length >= 2, {
      timeoutMs: 30_000,
      intervalMs: 200,
      message: 'both build containers',
    });
    expect((await buildContainers(id, 'build')).length).toBe(2);
    const { stdout: owner } = await run('docker', [
      'ps',
      '-a',
      '--format',
      '{{.Label "org.plugforge.worker"}}',
      '--filter',
      `label=org.plugforge.build=${id}`,
    ]);
    const dead = owner.split('\n')[0]!;

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    // The dead worker's containers are orphans now.
    expect((await buildContainers(id)).length).toBeGreaterThan(0);
    expect((await client.get(`/v1/builds/${id}`)).body.status).toBe('running');

    startWorker();
    const doc = await client.waitFor(id, undefined, 240_000);
    expect(doc.status).toBe('succeeded');
    for (const t of ['linux-amd64', 'linux-arm64']) {
      expect(doc.targets[t].artifact.name).toBe(`crash-${t}.so`);
    }
    const logs = await client.get(`/v1/builds/${id}/logs`);
    expect(logs.text).toContain('taken over after a worker stopped');
    // A target's result is recorded before its containers are removed: give the teardown its moment.
    await eventually(async () => (await buildContainers(id)).length === 0, {
      timeoutMs: 20_000,
      intervalMs: 200,
      message: 'the build containers removed',
    });
    expect(await buildContainers(id)).toEqual([]);
    // Everything the dead worker had made (containers, their disks, capability checks) is
    // swept by the new one once the dead one's report has expired.
    const leftovers = async () => {
      const containers = (await run('docker', ['ps', '-a', '-q', '--filter', `label=org.plugforge.worker=${dead}`])).stdout.trim();
      const volumes = (await run('docker', ['volume', 'ls', '-q', '--filter', `label=org.plugforge.worker=${dead}`])).stdout.trim();
      return [containers, volumes].filter(Boolean).join(' ');
    };
    await eventually(async () => (await leftovers()) === '', {
      timeoutMs: 90_000,
      intervalMs: 1_000,
      message: "the dead worker's containers and volumes swept",
    });
    expect(await leftovers()).toBe('');
  }, 480_000);
});
