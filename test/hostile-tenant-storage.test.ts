import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { requireDocker, requireImages, requireRedis } from './support/env.js';
import { TenantClient } from './support/http.js';
import { startServe, type ServeProcess } from './support/serve-process.js';
import { GOTIFY_PLUGIN, slowPlugin } from './support/fixtures.js';
import { tarOf } from './support/source.js';
import { eventually } from './support/eventually.js';

/**
 * A hostile tenant's storage and shares, against `plugforge serve` as a process (issue
 * "A hostile tenant's worst day", finding 6): a build's log stream is capped in lines and
 * says where lines were dropped; one tenant holds at most its share of the log followers
 * and of the host-binary memory budget; uploads in flight count toward its active builds.
 */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const suffix = randomBytes(3).toString('hex');
const A = { tenant: `store-a-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const B = { tenant: `store-b-${suffix}`, token: `pf_${randomBytes(24).toString('base64url')}` };
const MAX_LOG_LINES = 2000;

let serve: ServeProcess;
let redis: Redis;
let a: TenantClient;
let b: TenantClient;

beforeAll(async () => {
  redis = await requireRedis();
  await requireImages(await requireDocker());
  serve = await startServe({
    PLUGFORGE_TOKENS: `${A.tenant}:${sha256(A.token)},${B.tenant}:${sha256(B.token)}`,
    // A tenant's share is a quarter (the default): 2 of 8 followers, 64 of 256 MiB of host binaries.
    PLUGFORGE_MAX_LOG_FOLLOWERS: '8',
    PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS: '3',
    PLUGFORGE_MAX_LOG_LINES: String(MAX_LOG_LINES),
    PLUGFORGE_IMAGES_ON_DEMAND: '0',
    PLUGFORGE_WORKER_CONCURRENCY: '2',
  });
  a = new TenantClient(serve.url, A.token);
  b = new TenantClient(serve.url, B.token);
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  redis?.disconnect();
});

/** An upload that sends `head` and then holds its connection open, as a slow or hostile client. */
interface HeldUpload {
  /** The answer, if the server gave one before the body ended. */
  answered(): { status: number; body: string } | undefined;
  abort(): void;
}

function holdUpload(token: string, headers: Record<string, string>, head: Buffer, declared: number): Promise<HeldUpload> {
  return new Promise((resolve, reject) => {
    let answer: { status: number; body: string } | undefined;
    const req = http.request(
      `${serve.url}/v1/builds?targets=linux-amd64`,
      { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Length': String(declared), ...headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => (answer = { status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', () => undefined);
    req.write(head, (err) => {
      if (err) reject(err);
      // Let the server take in what was sent (busboy parses it, the budget is taken).
      else setTimeout(() => resolve({ answered: () => answer, abort: () => req.destroy() }), 1500);
    });
  });
}

const BOUNDARY = 'plugforge-storage-test';
function formPart(name: string, filename: string, bytes: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    bytes,
    Buffer.from('\r\n'),
  ]);
}
const FORM = { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` };

function follow(client: TenantClient, id: string): Promise<{ status: number; body: string; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      `${serve.url}/v1/builds/${id}/logs?follow=1`,
      { headers: { Authorization: `Bearer ${client === a ? A.token : B.token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        if (res.statusCode === 200) res.resume();
        else res.on('data', (d: string) => (body += d));
        const done = () => resolve({ status: res.statusCode ?? 0, body, close: () => req.destroy() });
        if (res.statusCode === 200) done();
        else res.on('end', done);
      },
    );
    req.on('error', reject);
  });
}

/** A cgo plugin whose C compile prints `warnings` warnings (three lines each), then a Go compile error. */
function noisyFailingPlugin(warnings: number): Record<string, string> {
  const preamble = Array.from({ length: warnings }, (_, i) => `#warning w${i}`).join('\n');
  return {
    'go.mod': 'module example.com/noisy\n\ngo 1.22\n',
    'main.go': `package main\n\n/*\n${preamble}\n*/\nimport "C"\n\nfunc main() {}\n\nvar x int = "not an int"\n`,
  };
}

describe('a build log has a cap in lines (PLUGFORGE_MAX_LOG_LINES)', () => {
  it('keeps the stream of a failing build that printed over 10,000 lines at its cap, and every reader shows where lines were dropped', async () => {
    const res = await a.submit(await tarOf(noisyFailingPlugin(3500), { gzip: true }), 'targets=linux-amd64');
    expect(res.status, res.text).toBe(202);
    const id = res.body.id as string;
    const doc = await a.waitFor(id, ['succeeded', 'failed', 'canceled'], 240_000);
    expect(doc.status).toBe('failed');
    const key = `pf:build:${id}:logs`;
    expect(await redis.xlen(key)).toBeLessThanOrEqual(MAX_LOG_LINES);

    const truncated =
      /\[plugforge\] log truncated: \d+ earlier lines of this build's log were dropped \(it keeps its last 2000, PLUGFORGE_MAX_LOG_LINES\)/;
    const plain = await a.get(`/v1/builds/${id}/logs`);
    expect(plain.text.split('\n')[0]).toMatch(truncated);
    expect(plain.text).toContain('not an int');
    const one = await a.get(`/v1/builds/${id}/logs?target=linux-amd64`);
    expect(one.text.split('\n')[0]).toMatch(truncated);
    const sse = await a.request('GET', `/v1/builds/${id}/logs?follow=1`, undefined, { Accept: 'text/event-stream' });
    expect(sse.text.split('\n\n')[0]).toMatch(new RegExp(`^event: log\\ndata: ${truncated.source}`));
    const cli = await runCli(['logs', id, '--follow', '--target', 'linux-amd64'], {
      env: { PLUGFORGE_URL: serve.url, PLUGFORGE_TOKEN: A.token },
    });
    expect(cli.stdout.split('\n')[0]).toMatch(truncated);
    // The build did print them: one entry a line, over 10,000 added.
    const info = (await redis.call('XINFO', 'STREAM', key)) as unknown[];
    expect(Number(info[info.indexOf('entries-added') + 1])).toBeGreaterThan(10_000);
  }, 300_000);
});

/** Bytes that start as an ELF file, so they are held as a host executable (text is capped far lower). */
function elfLike(size: number): Buffer {
  const bytes = Buffer.alloc(size, 1);
  bytes.write('\x7fELF', 0, 'latin1');
  return bytes;
}

describe("one tenant's share of what the API holds for all", () => {
  it('answers 429 tenant_too_many_followers to a tenant holding a quarter of the followers, while another tenant still follows', async () => {
    const mine = await a.submit(await tarOf(slowPlugin(), { gzip: true }), 'targets=linux-amd64');
    const theirs = await b.submit(await tarOf(slowPlugin(), { gzip: true }), 'targets=linux-amd64&name=theirs');
    expect([mine.status, theirs.status]).toEqual([202, 202]);
    const held = [await follow(a, mine.body.id), await follow(a, mine.body.id)];
    expect(held.map((f) => f.status)).toEqual([200, 200]);
    const refused = await follow(a, mine.body.id);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body).error.code).toBe('tenant_too_many_followers');
    expect(JSON.parse(refused.body).error.message).toMatch(/2 of this server's 8/);
    const other = await follow(b, theirs.body.id);
    expect(other.status).toBe(200);
    for (const f of [...held, other]) f.close();
    await a.request('DELETE', `/v1/builds/${mine.body.id}`);
    await b.request('DELETE', `/v1/builds/${theirs.body.id}`);
    await a.waitFor(mine.body.id);
  }, 120_000);

  it('answers 429 tenant_host_binary_busy past a quarter of the host-binary budget, while another tenant is still served', async () => {
    const source = formPart('source', 'src.tar.gz', await tarOf(GOTIFY_PLUGIN, { gzip: true }));
    const big = Buffer.concat([source, formPart('hostBinary', 'host', elfLike(60 * 1024 * 1024)).subarray(0, -2)]);
    const holding = await holdUpload(A.token, FORM, big, big.length + 1024);
    try {
      const more = Buffer.concat([source, formPart('hostBinary', 'host', elfLike(8 * 1024 * 1024)), Buffer.from(`--${BOUNDARY}--\r\n`)]);
      const refused = await a.request('POST', '/v1/builds?targets=linux-amd64', more, FORM);
      expect(refused.status, refused.text).toBe(429);
      expect(refused.body.error.code).toBe('tenant_host_binary_busy');
      const served = await b.request('POST', '/v1/builds?targets=linux-amd64', more, FORM);
      expect([429, 503]).not.toContain(served.status);
      expect(served.text).not.toMatch(/host_binary_busy/);
    } finally {
      holding.abort();
    }
  }, 120_000);

  it('counts uploads in flight toward the active builds of their tenant (3 here), and gives the place back when one is cut off', async () => {
    const body = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    const gzip = { 'Content-Type': 'application/gzip' };
    const uploads = [
      await holdUpload(A.token, gzip, body.subarray(0, 100), body.length),
      await holdUpload(A.token, gzip, body.subarray(0, 100), body.length),
      await holdUpload(A.token, gzip, body.subarray(0, 100), body.length),
    ];
    try {
      expect(uploads.map((u) => u.answered())).toEqual([undefined, undefined, undefined]);
      const fourth = await a.submit(body, 'targets=linux-amd64&name=fourth');
      expect(fourth.status, fourth.text).toBe(429);
      expect(fourth.body.error.code).toBe('too_many_builds');
      const bobs = await b.submit(body, 'targets=linux-amd64&name=bobs');
      expect(bobs.status, bobs.text).toBe(202);
      await b.request('DELETE', `/v1/builds/${bobs.body.id}`);
    } finally {
      for (const u of uploads) u.abort();
    }
    // The cut-off uploads' places come back: the submission is taken once one does.
    const again = await eventually(
      async () => {
        const res = await a.submit(body, 'targets=linux-amd64&name=again');
        return res.status === 429 ? undefined : res;
      },
      { intervalMs: 200, message: 'a place given back to the tenant' },
    );
    expect(again.status, again.text).toBe(202);
    await a.request('DELETE', `/v1/builds/${again.body.id}`);
  }, 120_000);
});
