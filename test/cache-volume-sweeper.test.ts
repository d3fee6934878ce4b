import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { loadConfig } from '../src/config.js';
import { CacheVolumeSweeper, TENANT_VOLUME_PREFIXES } from '../src/runtime/cache-volume-sweeper.js';
import { DockerRuntime } from '../src/runtime/docker-runtime.js';
import { plan } from '../src/worker/plan.js';
import { requireDocker, requireRedis } from './support/env.js';

/**
 * Per-tenant cache volumes that no build used for PLUGFORGE_CACHE_IDLE_DAYS are removed
 * from the worker's engine; one a container mounts stays. Real Docker, real Redis.
 */
const DAY = 24 * 3600_000;
const tag = randomBytes(4).toString('hex');
const name = (what: string) => `plugforge-gocache-sweep${tag}-${what}-1.22.12-linux-amd64`;
let docker: Docker;
let redis: Redis;
let holder: Docker.Container | undefined;
const made: string[] = [];

beforeAll(async () => {
  docker = await requireDocker();
  redis = await requireRedis();
});

afterAll(async () => {
  await holder?.remove({ force: true }).catch(() => undefined);
  for (const v of made)
    await docker
      ?.getVolume(v)
      .remove()
      .catch(() => undefined);
  await redis?.zrem(CacheVolumeSweeper.USED_KEY, ...made);
  redis?.disconnect();
});

async function volume(what: string, prefix = ''): Promise<string> {
  const v = prefix ? `${prefix}${tag}-${what}` : name(what);
  await docker.createVolume({ Name: v });
  made.push(v);
  return v;
}

async function exists(v: string): Promise<boolean> {
  return docker
    .getVolume(v)
    .inspect()
    .then(
      () => true,
      () => false,
    );
}

describe('the sweep of idle per-tenant cache volumes', () => {
  it('removes a volume whose last recorded use is older than the idle time, and keeps a recent, an unrecorded, a mounted and a foreign one', async () => {
    const sweeper = new CacheVolumeSweeper(docker, redis, { idleMs: 30 * DAY, prefixes: TENANT_VOLUME_PREFIXES });
    const now = Date.now();
    const idle = await volume('idle');
    const recent = await volume('recent');
    const unrecorded = await volume('unrecorded');
    const mounted = await volume('mounted');
    const foreign = await volume('foreign', 'plugforge-other-');
    await sweeper.used([idle, mounted], now - 31 * DAY);
    await sweeper.used([recent], now - 29 * DAY);
    // A foreign name is not recorded, and not swept even when an old use is written by hand.
    await sweeper.used([foreign], now - 31 * DAY);
    expect(await redis.zscore(CacheVolumeSweeper.USED_KEY, foreign)).toBeNull();
    await redis.zadd(CacheVolumeSweeper.USED_KEY, now - 31 * DAY, foreign);
    // A build's container (created, not even started) holds the mounted one.
    const image = (await docker.listImages()).flatMap((i) => i.RepoTags ?? []).find((t) => !t.includes('<none>'))!;
    holder = await docker.createContainer({
      Image: image,
      Cmd: ['true'],
      HostConfig: { Mounts: [{ Type: 'volume', Source: mounted, Target: '/cache' }] },
    });

    const report = await sweeper.sweep(now);
    expect(report.removed.filter((v) => v.includes(tag))).toEqual([idle]);
    expect(report.inUse.filter((v) => v.includes(tag))).toEqual([mounted]);
    expect(await exists(idle)).toBe(false);
    for (const v of [recent, unrecorded, mounted, foreign]) expect(await exists(v), v).toBe(true);
    expect(await redis.zscore(CacheVolumeSweeper.USED_KEY, idle)).toBeNull();
    // Never recorded before: idle from this sweep on.
    expect(Number(await redis.zscore(CacheVolumeSweeper.USED_KEY, unrecorded))).toBe(now);

    // Once no container holds it, it goes at the next sweep.
    await holder.remove({ force: true });
    holder = undefined;
    expect((await sweeper.sweep(now)).removed.filter((v) => v.includes(tag))).toEqual([mounted]);
  });

  it('waits to use a volume while a sweep is removing it', async () => {
    const sweeper = new CacheVolumeSweeper(docker, redis, { idleMs: DAY, prefixes: TENANT_VOLUME_PREFIXES });
    const v = name('marked');
    made.push(v);
    await redis.set(`pf:cache-volumes:removing:${v}`, '1', 'PX', 600);
    const started = Date.now();
    await sweeper.used([v]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('is told every cache a build prepares, before the volume is touched', async () => {
    const told: string[][] = [];
    const record = {
      id: 'sweep1',
      tenant: `sweep${tag}`,
      go: '1.22.12',
      targetIds: ['linux-amd64'],
      source: { sha256: 'a'.repeat(64), size: 1, module: 'example.com/x', vendored: false, requirements: false },
    } as unknown as BuildRecord;
    const spec = plan(record, 'linux-amd64', loadConfig({}), { workerId: 'sweep', instanceId: `sweep-${tag}` }).container;
    made.push(spec.cacheVolume!);
    // A runtime whose engine refuses everything still tells first.
    const runtime = new DockerRuntime(
      { getVolume: () => ({ inspect: () => Promise.reject(new Error('no engine')) }) } as unknown as Docker,
      async (volumes) => void told.push(volumes),
    );
    await expect(runtime.prepareCache(spec)).rejects.toThrow();
    expect(told).toEqual([[spec.cacheVolume]]);
  });
});
