import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../usage-error.js';
import { ClientError } from './client-errors.js';

/** How long the CLI keeps trying a request by default (PLUGFORGE_RETRY_SECONDS, --retry-for). */
export const DEFAULT_RETRY_SECONDS = 120;
/** A server that never answered (refused, no such name) is tried this long at most: a wrong URL fails fast. */
const NEVER_ANSWERED_MS = 5000;
const STATUSES = new Set([429, 502, 503, 504]);
/** Network failures of a connection that was made: the next try may well pass. */
const BROKEN = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN']);

export interface RetryPolicy {
  /** Give up once this much time has passed since the first try (0: one try). */
  forMs: number;
  /** Whether the server has answered this client before (then a refused connection is a restart, worth waiting for). */
  answeredBefore: () => boolean;
  onRetry?: (err: ClientError, waitMs: number) => void;
  signal?: AbortSignal;
  random?: () => number;
}

/**
 * How long to wait before trying again after `err`, or undefined when trying again cannot
 * help: 429 and 503 (after the server's Retry-After), 502 and 504 from a proxy, a key still
 * held by the same submission (409 idempotency_key_in_use), and broken or timed-out
 * connections, with jittered exponential backoff (docs/cli.md, "Retries").
 */
export function retryDelay(err: unknown, attempt: number, elapsedMs: number, policy: RetryPolicy): number | undefined {
  if (!(err instanceof ClientError)) return undefined;
  const backoff = () => Math.max(250, (policy.random ?? Math.random)() * Math.min(30_000, 500 * 2 ** attempt));
  if ((err.status !== undefined && STATUSES.has(err.status)) || err.code === 'idempotency_key_in_use') return err.retryAfterMs ?? backoff();
  if (err.code === 'server_timeout' || err.code === 'connection_lost') return backoff();
  if (err.code !== 'server_unreachable') return undefined;
  if (err.network !== undefined && BROKEN.has(err.network)) return backoff();
  if (policy.answeredBefore()) return backoff();
  const wait = backoff();
  return elapsedMs + wait <= NEVER_ANSWERED_MS ? wait : undefined;
}

/** Runs `attempt` until it resolves, a failure is not worth retrying, or the policy's time is up (the last error, saying so). */
export async function withRetries<T>(attempt: (n: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  const started = Date.now();
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const elapsed = Date.now() - started;
      const wait = policy.signal?.aborted ? undefined : retryDelay(err, n, elapsed, policy);
      if (wait === undefined) throw err;
      if (elapsed + wait > policy.forMs) throw gaveUp(err as ClientError, n + 1, elapsed, policy.forMs);
      policy.onRetry?.(err as ClientError, wait);
      await sleep(wait, undefined, policy.signal ? { signal: policy.signal } : {});
    }
  }
}

function gaveUp(err: ClientError, tries: number, elapsedMs: number, forMs: number): ClientError {
  if (tries === 1 && forMs === 0) return err;
  const more = `Gave up after ${tries} ${tries === 1 ? 'try' : 'tries'} in ${Math.round(elapsedMs / 1000)} s (retries stop after ${Math.round(forMs / 1000)} s: --retry-for or PLUGFORGE_RETRY_SECONDS).`;
  return new ClientError(err.code, `${err.message} ${more}`, {
    ...(err.status !== undefined ? { status: err.status } : {}),
    exitCode: err.exitCode,
  });
}

/** --retry-for SECONDS, else PLUGFORGE_RETRY_SECONDS, else the default; in milliseconds. */
export function retryForMs(option: string | undefined, usage: string): number {
  const text = option ?? process.env.PLUGFORGE_RETRY_SECONDS;
  if (text === undefined || text === '') return DEFAULT_RETRY_SECONDS * 1000;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 86_400)
    throw new UsageError(`--retry-for takes seconds from 0 to 86400, not ${JSON.stringify(text)}`, usage);
  return Math.round(seconds * 1000);
}
