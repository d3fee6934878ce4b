import { createHash } from 'node:crypto';
import type { Request } from 'express';
import type { Redis } from 'ioredis';
import { PlugforgeError } from '../errors/plugforge-error.js';

/** How long a key names its build: a day (docs/cli.md, "Retries"). */
export const IDEMPOTENCY_KEEP_SECONDS = 24 * 3600;

const KEY_RE = /^[\x21-\x7e]{1,200}$/;

/** The request's `Idempotency-Key`, checked; undefined when it sent none. */
export function idempotencyKeyOf(req: Request): string | undefined {
  const key = req.headers['idempotency-key'];
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !KEY_RE.test(key)) {
    throw new PlugforgeError(
      'invalid_idempotency_key',
      'The Idempotency-Key header must be 1 to 200 printable ASCII characters without spaces (a UUID, say); send one key per build you mean to start.',
    );
  }
  return key;
}

export type Claim = { claimed: true } | { claimed: false; buildId?: string };

/**
 * POST /v1/builds's Idempotency-Key, per tenant: a retried submission whose first try did
 * reach the server gets that build back instead of starting a second one. A key is claimed
 * (`pending:<id>`) before the upload is read, for as long as an upload may take, and then
 * names its build for a day; a submission that fails gives its claim back, so the retry
 * can start the build. Only a hash of the key is kept; tenants never see each other's keys.
 */
export class IdempotencyKeys {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly uploadMs: number,
  ) {}

  private keyOf(tenant: string, key: string): string {
    return `${this.prefix}:idempotency:${tenant}:${createHash('sha256').update(key).digest('hex')}`;
  }

  /** The build a key already names, if any (`pending` while its first submission is still arriving). */
  async lookup(tenant: string, key: string): Promise<{ buildId: string } | { pending: true } | undefined> {
    const value = await this.redis.get(this.keyOf(tenant, key));
    if (value === null) return undefined;
    return value.startsWith('pending:') ? { pending: true } : { buildId: value };
  }

  /** Takes the key for build `id` in one Redis step; false when another submission holds it. */
  async claim(tenant: string, key: string, id: string): Promise<boolean> {
    const ttl = Math.ceil(this.uploadMs / 1000) + 60;
    return (await this.redis.set(this.keyOf(tenant, key), `pending:${id}`, 'EX', ttl, 'NX')) === 'OK';
  }

  /** The build was accepted: the key names it for a day. */
  async settle(tenant: string, key: string, id: string): Promise<void> {
    await this.redis.set(this.keyOf(tenant, key), id, 'EX', IDEMPOTENCY_KEEP_SECONDS);
  }

  /** The submission failed: its claim goes (only its own, not a claim taken since). */
  async release(tenant: string, key: string, id: string): Promise<void> {
    const k = this.keyOf(tenant, key);
    if ((await this.redis.get(k)) === `pending:${id}`) await this.redis.del(k);
  }
}

/** The answer to a key whose first submission is still arriving: try again shortly. */
export function keyInUse(): PlugforgeError {
  return new PlugforgeError(
    'idempotency_key_in_use',
    'A submission with this Idempotency-Key is still being received; try again in a few seconds to get its build.',
    { status: 409, retryable: true, details: { retryAfterSeconds: 2 } },
  );
}
