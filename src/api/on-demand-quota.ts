import type { Redis } from 'ioredis';
import { PlugforgeError } from '../errors/plugforge-error.js';

/** A day's set outlives its day by one, so a submission at midnight still finds it. */
const KEEP_SECONDS = 2 * 24 * 3600;

/**
 * Caps the Go releases one tenant may have builder images made for on demand
 * (docs/decisions.md, "Images on demand"): at most `perDay` distinct releases per UTC day,
 * counted when a submission would make images; asking again for one already counted is
 * free. One Redis set per queue, tenant and day; adding and counting are one MULTI, and a
 * submission that finds the set over the cap takes its release back out, so concurrent
 * submissions never overshoot (at worst both are refused). Errors: an unreachable Redis
 * rejects, and the submission fails with nothing made.
 */
export class OnDemandQuota {
  constructor(
    private readonly redis: Redis,
    private readonly queueName: string,
    /** 0: no limit. */
    private readonly perDay: number,
  ) {}

  private key(tenant: string, now: Date): string {
    return `pf:${this.queueName}:tenant:${tenant}:on-demand:${now.toISOString().slice(0, 10)}`;
  }

  /**
   * Counts release `go` for `tenant` today, or refuses with 429 image_quota_exceeded naming
   * the releases already counted. Returns how to give it back (a submission refused later),
   * a no-op when it was counted before.
   */
  async admit(tenant: string, go: string, now = new Date()): Promise<() => Promise<unknown>> {
    if (this.perDay === 0) return async () => undefined;
    const key = this.key(tenant, now);
    const res = await this.redis.multi().sadd(key, go).scard(key).expire(key, KEEP_SECONDS).exec();
    const added = Number(res?.[0]?.[1] ?? 0) === 1;
    const count = Number(res?.[1]?.[1] ?? 0);
    if (added && count > this.perDay) {
      await this.redis.srem(key, go);
      const counted = (await this.redis.smembers(key)).sort();
      throw new PlugforgeError(
        'image_quota_exceeded',
        `Tenant ${tenant} has had builder images made on demand today for Go ${counted.join(', ')}; PLUGFORGE_IMAGES_ON_DEMAND_PER_TENANT allows ${this.perDay} a day. Ask for a release whose images exist (GET /v1/toolchains), or try again tomorrow (UTC).`,
        { status: 429, details: { limit: this.perDay, releases: counted } },
      );
    }
    return added ? () => this.redis.srem(key, go) : async () => undefined;
  }
}
