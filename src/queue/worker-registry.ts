import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ToolchainImage } from '../images/image-catalog.js';

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
 * Live workers in Redis: each keeps `pf:worker:<id>` alive with a TTL. The API learns from
 * it which toolchains exist (it needs no Docker engine of its own), and sweepers learn
 * which workers are gone (their containers are orphans).
 */
export class WorkerRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'pf',
    readonly ttlSeconds = 20,
  ) {}

  /** The installation's id: made once by whichever process asks first, the same for all after. */
  async instanceId(): Promise<string> {
    const key = `${this.prefix}:instance`;
    await this.redis.set(key, randomBytes(6).toString('hex'), 'NX');
    const id = await this.redis.get(key);
    if (!id) throw new Error(`could not read ${key} from Redis`);
    return id;
  }

  async report(report: WorkerReport): Promise<void> {
    await this.redis.set(`${this.prefix}:worker:${report.id}`, JSON.stringify(report), 'EX', this.ttlSeconds);
  }

  async remove(id: string): Promise<void> {
    await this.redis.del(`${this.prefix}:worker:${id}`);
  }

  async live(): Promise<WorkerReport[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}:worker:*`, 'COUNT', 200);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    if (!keys.length) return [];
    const values = await this.redis.mget(keys);
    return values.filter((v): v is string => Boolean(v)).map((v) => JSON.parse(v) as WorkerReport);
  }
}
