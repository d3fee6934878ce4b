import { createServer, type Server } from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientError } from '../src/client/client-errors.js';
import { retryDelay, withRetries, type RetryPolicy } from '../src/client/retry.js';
import { requireCompiledCli, runCli } from './support/cli.js';

const policy = (over: Partial<RetryPolicy> = {}): RetryPolicy => ({ forMs: 60_000, answeredBefore: () => false, random: () => 1, ...over });

describe('when the CLI tries a request again (src/client/retry.ts)', () => {
  it('waits out 429 and 503 for their Retry-After, backs off on broken connections, and never retries a refusal', () => {
    expect(retryDelay(new ClientError('too_many_builds', 'x', { status: 429, retryAfterMs: 2000 }), 0, 0, policy())).toBe(2000);
    expect(retryDelay(new ClientError('redis_unavailable', 'x', { status: 503 }), 3, 0, policy())).toBe(4000);
    expect(retryDelay(new ClientError('http_502', 'x', { status: 502 }), 0, 0, policy())).toBe(500);
    expect(retryDelay(new ClientError('idempotency_key_in_use', 'x', { status: 409, retryAfterMs: 2000 }), 0, 0, policy())).toBe(2000);
    expect(retryDelay(new ClientError('connection_lost', 'x', { network: 'ECONNRESET' }), 1, 0, policy())).toBe(1000);
    expect(retryDelay(new ClientError('server_unreachable', 'x', { network: 'ECONNRESET' }), 20, 0, policy())).toBe(30_000);
    for (const refused of [400, 401, 403, 404, 409, 413, 422, 500])
      expect(retryDelay(new ClientError('refused', 'x', { status: refused }), 0, 0, policy())).toBeUndefined();
    expect(retryDelay(new Error('a file could not be read'), 0, 0, policy())).toBeUndefined();
    // Jitter: a random share of the exponential step, never under 250 ms.
    expect(retryDelay(new ClientError('server_timeout', 'x'), 4, 0, policy({ random: () => 0.5 }))).toBe(4000);
    expect(retryDelay(new ClientError('server_timeout', 'x'), 4, 0, policy({ random: () => 0 }))).toBe(250);
  });

  it('gives a server that never answered (refused, unknown name) 5 s, one that answered before all the time', () => {
    const refused = new ClientError('server_unreachable', 'x', { network: 'ECONNREFUSED' });
    expect(retryDelay(refused, 0, 1000, policy())).toBeDefined();
    // Its last wait ends within the 5 s too: 4 s of backoff at 2 s in would not.
    expect(retryDelay(refused, 3, 2000, policy())).toBeUndefined();
    expect(retryDelay(refused, 3, 6000, policy())).toBeUndefined();
    expect(retryDelay(refused, 3, 6000, policy({ answeredBefore: () => true }))).toBeDefined();
  });

  it('stops when the next wait would pass its time, with the last error and a sentence saying so', async () => {
    let tries = 0;
    const failing = withRetries(
      async () => {
        tries++;
        throw new ClientError('redis_unavailable', 'The build queue (Redis) is unreachable; try again shortly.', {
          status: 503,
          retryAfterMs: 300,
        });
      },
      policy({ forMs: 1000 }),
    );
    await expect(failing).rejects.toMatchObject({ code: 'redis_unavailable', status: 503, exitCode: 3 });
    await expect(failing).rejects.toThrow(/Gave up after [34] tries in 1 s \(retries stop after 1 s/);
    expect([3, 4]).toContain(tries);
  });
});

/** A stand-in server whose answers to GET /v1/builds/:id are scripted, one per request. */
let server: Server;
let base = '';
let script: ((res: import('node:http').ServerResponse) => void)[] = [];
const seenAt: number[] = [];

const json =
  (status: number, body: unknown, headers: Record<string, string> = {}) =>
  (res: import('node:http').ServerResponse) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
const DOC = {
  id: 'abc',
  status: 'succeeded',
  go: '1.22.12',
  goRequested: '1.22',
  name: 'hello',
  mode: 'plugin',
  host: 'generic',
  module: 'example.com/hello',
  createdAt: '2026-12-07T00:00:00.000Z',
  targets: {},
};

beforeAll(async () => {
  requireCompiledCli();
  server = createServer((_req, res) => {
    seenAt.push(Date.now());
    (
      script.shift() ??
      json(
        503,
        { error: { code: 'redis_unavailable', message: 'The build queue (Redis) is unreachable; try again shortly.' } },
        { 'Retry-After': '1' },
      )
    )(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
});

afterEach(() => {
  script = [];
  seenAt.length = 0;
});

describe('plugforge against a server that is busy', () => {
  it('waits out a 429 with Retry-After: 2, then gets its answer', async () => {
    script = [json(429, { error: { code: 'too_many_requests', message: 'Slow down.' } }, { 'Retry-After': '2' }), json(200, DOC)];
    const r = await runCli(['status', 'abc', '--json'], { env: { PLUGFORGE_URL: base } });
    expect(r.code, r.stderr).toBe(0);
    expect(seenAt).toHaveLength(2);
    expect(seenAt[1]! - seenAt[0]!).toBeGreaterThanOrEqual(1950);
    expect(r.stderr).toMatch(/Slow down\. \[429 too_many_requests\]; trying again in 2\.0 s/);
    expect(JSON.parse(r.stdout).id).toBe('abc');
  });

  it('ends a server that answers only 503 with exit 3 and a sentence once its time is up, not a hang', async () => {
    const r = await runCli(['status', 'abc', '--retry-for', '4'], { env: { PLUGFORGE_URL: base } });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(
      /Gave up after \d+ tries in \d s \(retries stop after 4 s: --retry-for or PLUGFORGE_RETRY_SECONDS\)\. \[503 redis_unavailable\]/,
    );
    expect(seenAt.length).toBeGreaterThanOrEqual(3);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('refuses a --retry-for that is not a number of seconds (exit 2)', async () => {
    const r = await runCli(['status', 'abc', '--retry-for', 'soon'], { env: { PLUGFORGE_URL: base } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--retry-for takes seconds from 0 to 86400, not "soon"');
  });
});
