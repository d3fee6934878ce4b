import { createHmac, randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import type { Redis } from 'ioredis';
import type { BuildRepository } from '../builds/build-repository.js';
import { buildSummary } from '../builds/build-view.js';
import { TERMINAL } from '../contract/build-vocabulary.js';
import type { ApiConfig } from '../config.js';
import type { Logger } from '../log.js';
import { PeriodicTask } from '../periodic-task.js';
import { redactUrls } from '../redact-url.js';
import { isPrivateAddress } from './callback-url.js';

/** One try of a delivery: when, and the receiver's HTTP status or why there was none. */
export interface DeliveryTry {
  at: string;
  status?: number;
  error?: string;
  durationMs: number;
}

/** A build's callback (docs/hosts.md, "Callbacks"): pending until its receiver answers 2xx, failed once retried for PLUGFORGE_CALLBACK_RETRY_SECONDS. */
export interface Delivery {
  id: string;
  build: string;
  url: string;
  event: 'build.ended';
  status: 'pending' | 'delivered' | 'failed';
  createdAt: string;
  tries: DeliveryTry[];
  nextTryAt?: string;
}

/** The header that carries the body's HMAC-SHA256 under the tenant's callback secret: `sha256=<hex>`. */
export const SIGNATURE_HEADER = 'X-Plugforge-Signature';
/** A receiver answers within this, or the try failed. */
const TRY_TIMEOUT_MS = 10_000;
/** Retries wait 1 s, 2 s, 4 s, … up to this. */
const MAX_BACKOFF_MS = 5 * 60_000;
/** How often due tries and ended builds are looked for. */
const TICK_MS = 500;
/** Tries kept in a delivery's record (the first ones and the last ones). */
const MAX_TRIES_KEPT = 50;
/** A delivery record outlives its build by this at most. */
const KEEP_MS = 31 * 24 * 3600_000;

/**
 * Build callbacks: a build submitted with `callback=` is noted here; once it has ended, its
 * summary is POSTed to the URL, signed with HMAC-SHA256 under the tenant's secret, and
 * retried with backoff (1 s doubling, at most 5 min apart) until the receiver answers 2xx
 * or the retry time is over. Every try is recorded (GET /v1/builds/:id/deliveries).
 * Redirects are not followed (a 3xx is a failed try); the receiver's name is resolved and
 * checked on every try, and the connection made to the address checked, so a name that
 * turns into a loopback or private address is refused unless the operator allows them.
 * Redis: `pf:<queue>:callbacks:awaiting` (builds not yet ended), `…:callbacks:due` (the
 * next try of each pending delivery), `…:delivery:<build>` (its record). Any number of
 * API processes: a try is claimed by one with a lock.
 */
export class CallbackDeliveries {
  private readonly task: PeriodicTask;

  constructor(
    private readonly redis: Redis,
    private readonly repo: BuildRepository,
    private readonly config: Pick<ApiConfig, 'queueName' | 'callbacks' | 'publicUrl'>,
    private readonly log: Logger,
  ) {
    this.task = new PeriodicTask(
      () => this.tick(),
      (err) => this.log.warn({ err: err.message }, 'callback deliveries: a round failed'),
    );
  }

  private key(part: string): string {
    return `pf:${this.config.queueName}:${part}`;
  }

  start(): void {
    this.task.start(TICK_MS, TICK_MS);
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  /** Notes a build whose end is to be called back to `url`. */
  async awaitEnd(build: string, url: string): Promise<void> {
    const delivery: Delivery = {
      id: `${build}-1`,
      build,
      url,
      event: 'build.ended',
      status: 'pending',
      createdAt: new Date().toISOString(),
      tries: [],
    };
    await this.redis
      .multi()
      .set(this.key(`delivery:${build}`), JSON.stringify(delivery), 'PX', KEEP_MS)
      .zadd(this.key('callbacks:awaiting'), Date.now(), build)
      .exec();
  }

  async list(build: string): Promise<Delivery[]> {
    const raw = await this.redis.get(this.key(`delivery:${build}`));
    return raw ? [JSON.parse(raw) as Delivery] : [];
  }

  /** The tenant's callback secret, made on first use. */
  async secretOf(tenant: string): Promise<string> {
    const key = this.key(`callback-secret:${tenant}`);
    await this.redis.set(key, randomBytes(32).toString('hex'), 'NX');
    return (await this.redis.get(key))!;
  }

  /** One round: builds that have ended get their first try now; every due try runs. */
  async tick(): Promise<void> {
    const awaiting = await this.redis.zrange(this.key('callbacks:awaiting'), 0, '199');
    for (const build of awaiting) {
      const state = await this.repo.get(build);
      if (state && !TERMINAL.has(state.status)) continue;
      await this.redis
        .multi()
        .zrem(this.key('callbacks:awaiting'), build)
        .zadd(this.key('callbacks:due'), String(Date.now()), build)
        .exec();
    }
    const due = await this.redis.zrangebyscore(this.key('callbacks:due'), 0, Date.now(), 'LIMIT', 0, 20);
    await Promise.all(due.map((build) => this.tryOnce(build)));
  }

  private async tryOnce(build: string): Promise<void> {
    const lock = this.key(`delivery-lock:${build}`);
    if ((await this.redis.set(lock, '1', 'PX', TRY_TIMEOUT_MS * 3, 'NX')) !== 'OK') return;
    try {
      const [delivery] = await this.list(build);
      const state = await this.repo.get(build);
      if (!delivery || !state || delivery.status !== 'pending') {
        await this.redis.zrem(this.key('callbacks:due'), build);
        return;
      }
      const body = JSON.stringify({
        event: delivery.event,
        delivery: delivery.id,
        build: buildSummary(state, this.config.publicUrl ?? ''),
      });
      const secret = await this.secretOf(state.record.tenant);
      const started = Date.now();
      const outcome = await this.post(delivery.url, body, {
        'Content-Type': 'application/json',
        'User-Agent': 'plugforge',
        'X-Plugforge-Event': delivery.event,
        'X-Plugforge-Delivery': delivery.id,
        [SIGNATURE_HEADER]: `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      });
      const done: DeliveryTry = { at: new Date(started).toISOString(), durationMs: Date.now() - started, ...outcome };
      const tries = [...delivery.tries, done];
      const kept = tries.length > MAX_TRIES_KEPT ? [...tries.slice(0, 10), ...tries.slice(-(MAX_TRIES_KEPT - 10))] : tries;
      const delivered = outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;
      const next = started + Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (tries.length - 1));
      const over = !delivered && (outcome.final || next - Date.parse(delivery.createdAt) > this.config.callbacks.retryMs);
      const { nextTryAt: _n, ...rest } = delivery;
      const updated: Delivery = {
        ...rest,
        tries: kept,
        status: delivered ? 'delivered' : over ? 'failed' : 'pending',
        ...(!delivered && !over ? { nextTryAt: new Date(next).toISOString() } : {}),
      };
      const multi = this.redis.multi().set(this.key(`delivery:${build}`), JSON.stringify(updated), 'PX', KEEP_MS);
      if (updated.status === 'pending') multi.zadd(this.key('callbacks:due'), next, build);
      else multi.zrem(this.key('callbacks:due'), build);
      await multi.exec();
      this.log.info({ build, try: tries.length, status: outcome.status, error: outcome.error, result: updated.status }, 'callback try');
    } finally {
      await this.redis.del(lock);
    }
  }

  /** One POST, to the address the receiver's name resolved to and was checked at; never follows a redirect. */
  private async post(
    url: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status?: number; error?: string; final?: boolean }> {
    const target = new URL(url);
    const name = target.hostname.replace(/^\[|\]$/g, '');
    let address: { address: string; family: number };
    try {
      address = await lookup(name);
    } catch (err) {
      return { error: `${name} could not be resolved (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    if (!this.config.callbacks.privateAddresses && isPrivateAddress(address.address))
      return {
        error: `${name} resolves to ${address.address}, a loopback, private or link-local address, which callbacks never reach here`,
        final: true,
      };
    const client = target.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const req = client.request(
        target,
        {
          method: 'POST',
          headers: { ...headers, 'Content-Length': Buffer.byteLength(body) },
          timeout: TRY_TIMEOUT_MS,
          // The address checked above, in the form the socket asks for (a list when it tries several families).
          lookup: ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) =>
            opts.all ? cb(null, [address]) : cb(null, address.address, address.family)) as never,
        },
        (res) => {
          res.resume();
          const status = res.statusCode ?? 0;
          resolve(
            status >= 300 && status < 400
              ? { status, error: `redirect to ${redactUrls(String(res.headers.location ?? '?'))} not followed` }
              : { status },
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TRY_TIMEOUT_MS / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ? `${err.code}: ${err.message}` : err.message }));
      req.end(body);
    });
  }
}
