import type { Request } from 'express';
import type { Redis } from 'ioredis';
import { takePlace } from '../redis/redis-scripts.js';
import { TERMINAL, type BuildRecord } from '../builds/build-document.js';
import type { BuildRepository } from '../builds/build-repository.js';
import { PlugforgeError } from '../errors/plugforge-error.js';

/** Who a request acts for, as the auth middleware decided. */
interface TenantContext {
  tenant: string;
  /** The caller showed a valid token (tokens are configured). */
  authenticated: boolean;
}

const contexts = new WeakMap<Request, TenantContext>();

/** Records the tenant a request acts for (the auth middleware calls this once per request). */
export function setTenant(req: Request, tenant: string, authenticated: boolean): void {
  contexts.set(req, { tenant, authenticated });
}

/** The tenant a request acts for. Without configured tokens every caller is the one tenant "public". */
export function tenantOf(req: Request): string {
  return contexts.get(req)?.tenant ?? 'public';
}

/**
 * Lets a request at a build only when the build is its tenant's. With tokens configured,
 * another tenant's build answers 403 (SECURITY.md); without tokens every caller is "public",
 * and a build recorded for a named tenant (tokens were configured once) answers 404.
 */
export function assertOwnBuild(req: Request, record: BuildRecord): void {
  const context = contexts.get(req);
  const tenant = context?.tenant ?? 'public';
  if (record.tenant === tenant) return;
  if (context?.authenticated) {
    throw new PlugforgeError(
      'forbidden',
      `Build ${record.id} belongs to another tenant; this token (tenant ${tenant}) may see only its own builds.`,
      { status: 403 },
    );
  }
  throw new PlugforgeError('build_not_found', `No build "${record.id}". Build ids are returned by POST /v1/builds.`, { status: 404 });
}

/** How long past the upload deadline a place may exist before its build record does (the record is written after the upload). */
const RESERVATION_GRACE_MS = 60_000;

/**
 * Caps the builds of one tenant that are queued or running at once, uploads in flight
 * included. Each upload takes a place, under its build's id, in a Redis sorted set per
 * queue and tenant (score: when it was taken) before its body is read, and the build keeps it;
 * places of builds that have ended, or whose record vanished, are given back lazily, on
 * the tenant's next submission. Taking a place is one Lua step, so concurrent
 * submissions never overshoot the limit. Safe for several API processes on one Redis.
 * Idempotent: releasing a place twice, or one never taken, changes nothing. Errors: a Redis
 * that cannot be reached rejects, and the submission answers 503 (retryable) with nothing
 * taken.
 */
export class TenantLimits {
  constructor(
    private readonly redis: Redis,
    private readonly repo: BuildRepository,
    private readonly queueName: string,
    /** 0: no limit. */
    private readonly maxActive: number,
    /** The upload deadline: a place without its build record is given back only after it (and a grace). */
    private readonly uploadMs: number,
  ) {}

  private key(tenant: string): string {
    return `pf:${this.queueName}:tenant:${tenant}:active`;
  }

  /** Takes a place for build `id` (before its upload is read), or refuses with 429 `too_many_builds`. */
  async reserve(tenant: string, id: string): Promise<void> {
    if (this.maxActive === 0) return;
    const active = await this.prune(tenant);
    const outcome = await takePlace(this.redis, { places: this.key(tenant), limit: this.maxActive, member: id, now: Date.now() });
    if (outcome === 'full') throw this.tooMany(tenant, Math.max(active, this.maxActive));
  }

  /** Gives a place back (a submission that failed after reserve). Idempotent. */
  async release(tenant: string, id: string): Promise<void> {
    if (this.maxActive === 0) return;
    await this.redis.zrem(this.key(tenant), id);
  }

  /** Drops the places of builds that have ended; returns how many are left. */
  private async prune(tenant: string): Promise<number> {
    const key = this.key(tenant);
    const ids = await this.redis.zrange(key, 0, '-1');
    if (!ids.length) return 0;
    const scores = await this.redis.zmscore(key, ...ids);
    const now = Date.now();
    const ended: string[] = [];
    for (const [i, id] of ids.entries()) {
      const since = Number(scores[i] ?? 0);
      const state = await this.repo.get(id);
      if (state ? TERMINAL.has(state.status) : now - since > this.uploadMs + RESERVATION_GRACE_MS) ended.push(id);
    }
    if (ended.length) await this.redis.zrem(key, ...ended);
    return ids.length - ended.length;
  }

  private tooMany(tenant: string, active: number): PlugforgeError {
    return new PlugforgeError(
      'too_many_builds',
      `Tenant ${tenant} has ${active} builds queued, running or uploading; the limit is ${this.maxActive}. Wait for one to finish (or cancel one with DELETE /v1/builds/:id), then submit again.`,
      { status: 429, details: { limit: this.maxActive } },
    );
  }
}
