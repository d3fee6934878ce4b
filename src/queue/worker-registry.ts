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
