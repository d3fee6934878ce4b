import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { PeriodicTask } from '../periodic-task.js';
import { isNotFound } from './docker-client.js';

/** Names of the per-tenant cache volumes the sweep may remove (each followed by the tenant): Go build caches; the serve command adds the module caches' (PLUGFORGE_MODULE_CACHE_VOLUME). */
export const TENANT_VOLUME_PREFIXES: readonly string[] = ['plugforge-gocache-'];

/** How often a worker sweeps its engine's cache volumes, and its first sweep after start. */
const SWEEP_EVERY_MS = 60 * 60_000;
const FIRST_SWEEP_MS = 2 * 60_000;
/** How long a removal's mark lasts at most (a sweeper that dies leaves it to expire). */
const REMOVING_MS = 60_000;

export interface CacheVolumeSweepOptions {
  /** A volume unused for longer than this is removed; 0: none ever is. */
  idleMs: number;
  /** Volume name prefixes the sweep looks at (TENANT_VOLUME_PREFIXES); any other volume is left alone. */
  prefixes: readonly string[];
}

export interface CacheVolumeSweepReport {
  removed: string[];
  /** Idle, but some container still mounts it (a build running, or one not yet torn down). */
  inUse: string[];
}

/**
 * Per-tenant cache volumes (plugforge-gocache-<tenant>-<go>-<target>, plugforge-gomod-<tenant>) that no build used for
 * `idleMs` are removed from the worker's engine, so that tenants who left, and releases
 * no longer asked for, give their disk back (docs/decisions.md, "Build containers").
 *
 * Last use is recorded in Redis (one sorted set for every installation on that Redis:
 * volume name -> ms) each time a build prepares a cache, before the volume is touched; a
 * volume never recorded (made before this, or by a Redis since flushed) is recorded when a
 * sweep first sees it, so it goes only after `idleMs` from then. A volume that any
 * container mounts is never removed (the engine refuses too). A removal is marked in Redis
 * before the sweep's last look at the record, and a build that records its use waits
 * while the mark is there: either the sweep sees the use and keeps the volume, or the
 * build sees the mark and prepares the volume after it is gone (DockerRuntime makes it again).
 *
 * Safe with several workers on one engine or many: each sweeps the engine it has, and a
 * volume already gone counts as removed. Errors: a sweep that fails is logged by the caller
 * and tried again at the next interval.
 */
export class CacheVolumeSweeper {
  private readonly task: PeriodicTask;

  constructor(
    private readonly docker: Docker,
    private readonly redis: Redis,
    private readonly options: CacheVolumeSweepOptions,
    onError: (err: Error) => void = () => undefined,
  ) {
    this.task = new PeriodicTask(() => this.sweep(), onError);
  }

  /** The sorted set of last uses (shared by every queue on this Redis: volumes are named without one). */
  static readonly USED_KEY = 'pf:cache-volumes:used';

  private static removingKey(volume: string): string {
    return `pf:cache-volumes:removing:${volume}`;
  }

  /** Records that a build is about to use these volumes (now); waits while a sweep is removing one of them. */
  async used(volumes: readonly string[], now = Date.now()): Promise<void> {
    const mine = volumes.filter((v) => this.options.prefixes.some((p) => v.startsWith(p)));
    if (!mine.length) return;
    await this.redis.zadd(CacheVolumeSweeper.USED_KEY, ...mine.flatMap((v) => [now, v]));
    const until = Date.now() + REMOVING_MS;
    while ((await this.redis.exists(...mine.map(CacheVolumeSweeper.removingKey))) > 0 && Date.now() < until) await sleep(200);
  }

  /** Sweeps two minutes after start and every hour after that; nothing when idleMs is 0. */
  start(): void {
    if (this.options.idleMs > 0) this.task.start(FIRST_SWEEP_MS, SWEEP_EVERY_MS);
  }

  /** Stops the timer and waits for a sweep under way. */
  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One sweep of this engine's volumes, at `now`. */
  async sweep(now = Date.now()): Promise<CacheVolumeSweepReport> {
    const report: CacheVolumeSweepReport = { removed: [], inUse: [] };
    const listed = (await this.docker.listVolumes()).Volumes ?? [];
    const names = listed.map((v) => v.Name).filter((n) => this.options.prefixes.some((p) => n.startsWith(p)));
    if (!names.length) return report;
    const key = CacheVolumeSweeper.USED_KEY;
    // Never seen before: idle from now on.
    await this.redis.zadd(key, 'NX', ...names.flatMap((n) => [now, n]));
    const cutoff = now - this.options.idleMs;
    for (const name of names) {
      if (Number(await this.redis.zscore(key, name)) > cutoff) continue;
      const mark = CacheVolumeSweeper.removingKey(name);
      await this.redis.set(mark, '1', 'PX', REMOVING_MS);
      try {
        // Read again under the mark (see the class comment): a build may have begun to use it.
        if (Number(await this.redis.zscore(key, name)) > cutoff) continue;
        const mounted = await this.docker.listContainers({ all: true, filters: JSON.stringify({ volume: [name] }) });
        if (mounted.length || !(await this.remove(name))) {
          report.inUse.push(name);
          continue;
        }
        report.removed.push(name);
        await this.redis.zrem(key, name);
      } finally {
        await this.redis.del(mark);
      }
    }
    return report;
  }

  /** Removes a volume; false when the engine says it is in use (409). */
  private async remove(name: string): Promise<boolean> {
    try {
      await this.docker.getVolume(name).remove();
      return true;
    } catch (err) {
      if (isNotFound(err)) return true;
      if ((err as { statusCode?: number }).statusCode === 409) return false;
      throw err;
    }
  }
}
