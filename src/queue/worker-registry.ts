import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ToolchainImage } from '../contract/toolchain-image.js';

/** What a live worker reports about itself every few seconds. */
export interface WorkerReport {
  id: string;
  hostname: string;
  concurrency: number;
  startedAt: string;
  reportedAt: string;
  dockerReachable: boolean;
  dockerError?: string;
  imageRepo: string;
  images: ToolchainImage[];
  /** Per image tag: how this worker's loading probe runs the target's programs, or why it cannot (src/worker/load-capabilities.ts). */
  load?: Record<string, { how?: string; unavailable?: string }>;
}

/**
 * Live workers in Redis, per installation (the prefix holds the queue's name, so two
 * installations sharing a Redis database never see each other's workers): each keeps
 * `<prefix>:worker:<id>` alive with a TTL and its expiry in the sorted set
 * `<prefix>:workers`, so listing the live workers costs O(workers), never a scan of the
 * keyspace. The API learns from it which toolchains exist (it needs no Docker engine of
 * its own), and sweepers learn which workers are gone (their containers are orphans).
 * Concurrency: any number of workers and API processes; each worker writes only its own
 * report. Idempotent: `report` (a heartbeat overwrites the last). Errors: a Redis that
 * cannot be reached rejects; a worker's heartbeat ignores it after the first (it reports
 * again in 5 s), and a worker whose report expired meanwhile is simply seen again.
 */
export class WorkerRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'pf',
    readonly ttlSeconds = 20,
  ) {}

  /** The registry of one installation: its keys under `pf:<queue>`. */
  static forQueue(redis: Redis, queue: string): WorkerRegistry {
    return new WorkerRegistry(redis, `pf:${queue}`);
  }

  private get setKey(): string {
    return `${this.prefix}:workers`;
  }

  /** The installation's id: made once by whichever process asks first, the same for all after. */
  async instanceId(): Promise<string> {
    const key = `${this.prefix}:instance`;
    await this.redis.set(key, randomBytes(6).toString('hex'), 'NX');
    const id = await this.redis.get(key);
    if (!id) throw new Error(`could not read ${key} from Redis`);
    return id;
  }

  async report(report: WorkerReport): Promise<void> {
    await this.redis
      .multi()
      .set(`${this.prefix}:worker:${report.id}`, JSON.stringify(report), 'EX', this.ttlSeconds)
      .zadd(this.setKey, Date.now() + this.ttlSeconds * 1000, report.id)
      .exec();
  }

  async remove(id: string): Promise<void> {
    await this.redis.multi().del(`${this.prefix}:worker:${id}`).zrem(this.setKey, id).exec();
  }

  async live(): Promise<WorkerReport[]> {
    // Workers that stopped reporting drop out of the set as their reports expire.
    await this.redis.zremrangebyscore(this.setKey, '-inf', String(Date.now()));
    const ids = await this.redis.zrange(this.setKey, '0', '-1');
    if (!ids.length) return [];
    const values = await this.redis.mget(ids.map((id) => `${this.prefix}:worker:${id}`));
    return values.filter((v): v is string => Boolean(v)).map((v) => JSON.parse(v) as WorkerReport);
  }
}
