import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCallbackUrl, isPrivateAddress } from '../src/api/callback-url.js';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { eventually } from './support/eventually.js';
import { requireRedis, testConfig } from './support/env.js';
import { freePort } from './support/free-port.js';
import { hostBuildInfo, startFakeWorker } from './support/fixtures.js';
import { TenantClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/**
 * Callbacks and watches (docs/hosts.md, "Callbacks", "Watches") through the API on real
 * Redis with a scripted worker, and a loopback receiver: the signature verifies with the
 * documented recipe, a redirect is not followed, a receiver down for its first 20 s gets
 * the callback of a watch's rebuild once it is up, and every try is listed.
 */
let redis: Redis;
let api: RunningService;
let worker: RunningService;
let base = '';
const TOKEN = randomBytes(12).toString('hex');
let client: TenantClient;

/** go version -m text of a release of host "w". */
const hostText = (v: string) => hostBuildInfo('example.com/w', v);

/** POST of a JSON body. */
function postJson(path: string, body: unknown) {
  return client.request('POST', path, JSON.stringify(body), { 'Content-Type': 'application/json' });
}

/** A receiver on loopback: what it was sent, and what it answers. */
interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}
async function receiver(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void, port = 0) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      answer(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { got, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` };
}

/** The README's recipe: HMAC-SHA256 of the raw body under the tenant's secret, compared with the header. */
function verifies(r: Received, secret: string): boolean {
  const expected = `sha256=${createHmac('sha256', secret).update(r.body).digest('hex')}`;
  return r.headers['x-plugforge-signature'] === expected;
}

let config: Awaited<ReturnType<typeof testConfig>>;

beforeAll(async () => {
  redis = await requireRedis();
  config = await testConfig({
    PLUGFORGE_TOKENS: `t:${createHash('sha256').update(TOKEN).digest('hex')}`,
    PLUGFORGE_CALLBACK_HOSTS: '127.0.0.1',
    PLUGFORGE_CALLBACK_PRIVATE: 'true',
  });
  api = await startService('api', config);
  worker = await startFakeWorker(config);
  base = `http://127.0.0.1:${api.port}`;
  client = new TenantClient(base, TOKEN);
  await client.waitUntilReady((b) => b.workers >= 1, 30_000);
});

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  redis?.disconnect();
});

async function build(fields: Record<string, string>) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('source', new Blob([await tarOf(GOTIFY_PLUGIN, { gzip: true })]), 'plugin.tar.gz');
  const res = await fetch(`${base}/v1/builds`, { method: 'POST', body: form, headers: { Authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as any };
}

async function register(version: string) {
  const form = new FormData();
  form.set('name', 'w');
  form.set('version', version);
  form.append('hostBinary', new Blob([hostText(`v${version}`)]), 'host');
  const res = await fetch(`${base}/v1/hosts`, { method: 'POST', body: form, headers: { Authorization: `Bearer ${TOKEN}` } });
  expect(res.status, await res.clone().text()).toBe(201);
}

describe('callback URLs', () => {
  const policy = { hosts: ['ci.example.com', '*.hooks.example.org'], privateAddresses: false, retryMs: 1000 };

  it('takes http(s) URLs of the hosts on the list, and refuses others, user info and private addresses with a sentence', () => {
    expect(checkCallbackUrl('https://ci.example.com/x', policy).host).toBe('ci.example.com');
    expect(checkCallbackUrl('https://a.hooks.example.org/x', policy).host).toBe('a.hooks.example.org');
    for (const [url, words] of [
      ['https://hooks.example.org/x', 'not among the hosts'],
      ['https://evil.example/x', 'not among the hosts'],
      ['ftp://ci.example.com/x', 'http or https'],
      ['https://u:p@ci.example.com/x', 'user or password'],
      ['not a url', 'not a URL'],
    ] as const) {
      expect(() => checkCallbackUrl(url, policy), url).toThrow(words);
    }
    expect(() => checkCallbackUrl('http://127.0.0.1/x', { ...policy, hosts: ['127.0.0.1'] })).toThrow('loopback, private or link-local');
    expect(() => checkCallbackUrl('https://x', { ...policy, hosts: [] })).toThrow('PLUGFORGE_CALLBACK_HOSTS');
  });

  it('knows loopback, private, link-local and mapped addresses', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fd00::1',
      'fe80::1',
      '::ffff:127.0.0.1',
    ])
      expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ['8.8.8.8', '172.32.0.1', '2001:db8::1', '::ffff:8.8.8.8']) expect(isPrivateAddress(a), a).toBe(false);
  });

  it('refuses a build whose callback is off the list, before its upload', async () => {
    const res = await build({ targets: 'linux-amd64', callback: 'http://elsewhere.example/hook' });
    expect([res.status, res.body.error.code]).toEqual([400, 'callback_refused']);
  });
});

describe('a callback', () => {
  it('POSTs the ended build, signed so that the documented recipe verifies it, and lists the try', async () => {
    const r = await receiver((_req, res) => res.writeHead(204).end());
    try {
      const res = await build({ targets: 'linux-amd64', callback: r.url });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      await eventually(() => r.got.length === 1, { timeoutMs: 20_000, message: 'the callback' });
      const { secret, header } = (await client.get('/v1/callbacks/secret')).body;
      expect(header).toBe('X-Plugforge-Signature');
      expect(verifies(r.got[0]!, secret)).toBe(true);
      expect(verifies(r.got[0]!, 'another secret')).toBe(false);
      const sent = JSON.parse(r.got[0]!.body);
      expect(sent).toMatchObject({ event: 'build.ended', build: { id: res.body.id, status: 'succeeded' } });
      expect(r.got[0]!.headers['x-plugforge-delivery']).toBe(sent.delivery);
      const { deliveries } = (await client.get(`/v1/builds/${res.body.id}/deliveries`)).body;
      expect(deliveries).toHaveLength(1);
      expect(deliveries[0]).toMatchObject({ url: r.url, status: 'delivered', tries: [{ status: 204 }] });
    } finally {
      r.server.close();
    }
  });

  it('follows no redirect: a 3xx is a failed try, retried, and the place it points to hears nothing', async () => {
    const elsewhere = await receiver((_req, res) => res.writeHead(204).end());
    const r = await receiver((_req, res) => res.writeHead(302, { Location: elsewhere.url }).end());
    try {
      const res = await build({ targets: 'linux-amd64', callback: r.url });
      expect(res.status).toBe(202);
      await eventually(() => r.got.length >= 2, { timeoutMs: 20_000, message: 'a retry after the redirect' });
      const [delivery] = (await client.get(`/v1/builds/${res.body.id}/deliveries`)).body.deliveries;
      expect(delivery.status).toBe('pending');
      expect(delivery.tries[0]).toMatchObject({ status: 302 });
      expect(delivery.tries[0].error).toContain('not followed');
      expect(elsewhere.got).toHaveLength(0);
    } finally {
      r.server.close();
      elsewhere.server.close();
    }
  });
});

describe('a delivery whose peers fail', () => {
  it('survives a receiver that hangs up mid-request and the API stopping between tries: the next API delivers it from Redis', async () => {
    let hangUps = 2;
    const r = await receiver((req, res) => {
      if (hangUps-- > 0) req.socket.destroy();
      else res.writeHead(204).end();
    });
    try {
      r.server.close();
      // Down at first: the build's end finds nobody, then the API stops with the delivery pending.
      const res = await build({ targets: 'linux-amd64', callback: r.url });
      expect(res.status).toBe(202);
      await eventually(async () => (await client.get(`/v1/builds/${res.body.id}/deliveries`)).body.deliveries[0]?.tries.length >= 1, {
        timeoutMs: 20_000,
        message: 'a first try',
      });
      await api.stop();
      const port = Number(new URL(r.url).port);
      await new Promise<void>((resolve) => r.server.listen(port, '127.0.0.1', resolve));
      api = await startService('api', config);
      base = `http://127.0.0.1:${api.port}`;
      client = new TenantClient(base, TOKEN);
      await eventually(() => r.got.length >= 3, { timeoutMs: 30_000, message: 'the delivery after two hang-ups' });
      const [delivery] = (await client.get(`/v1/builds/${res.body.id}/deliveries`)).body.deliveries;
      expect(delivery.status).toBe('delivered');
      expect(delivery.tries[0].error).toContain('ECONNREFUSED');
      expect(delivery.tries.filter((t: any) => /ECONNRESET|socket hang up/.test(t.error ?? ''))).toHaveLength(2);
      expect(delivery.tries.at(-1)).toMatchObject({ status: 204 });
      // Delivered once: nothing more arrives.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(r.got).toHaveLength(3);
    } finally {
      r.server.close();
    }
  }, 90_000);
});

describe('a watch', () => {
  it('rebuilds the watched plugin for a new release, and its callback arrives once the receiver is up (down for its first 20 s)', async () => {
    await register('1.0.0');
    const first = await build({ targets: 'linux-amd64', hosts: 'w@1.0.0' });
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    await client.waitFor(first.body.id, undefined, 20_000);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/hook`;
    const refused = await postJson('/v1/watches', { build: first.body.id, host: 'w', callback: 'http://elsewhere.example/' });
    expect([refused.status, refused.body.error.code]).toEqual([400, 'callback_refused']);
    const watch = await postJson('/v1/watches', { build: first.body.id, host: 'w', callback: url });
    expect(watch.status, JSON.stringify(watch.body)).toBe(201);
    expect(watch.body).toMatchObject({ build: first.body.id, host: 'w', callback: url, builds: [] });

    const downUntil = Date.now() + 20_000;
    await register('1.2.0');
    const rebuilt = await eventually(
      async () => (await client.get('/v1/watches')).body.watches.find((w: any) => w.id === watch.body.id)?.builds[0],
      { timeoutMs: 20_000, message: "the watch's rebuild" },
    );
    expect(rebuilt).toMatchObject({ release: 'w@1.2.0' });
    expect(rebuilt.error).toBeUndefined();
    const doc = await client.waitFor(rebuilt.build, undefined, 20_000);
    expect(doc).toMatchObject({ status: 'succeeded', hostMatch: { release: 'w@1.2.0' } });
    // The same options as the watched build.
    expect([doc.name, doc.mode, doc.host, Object.keys(doc.targets)]).toEqual([
      first.body.name,
      first.body.mode,
      first.body.host,
      ['linux-amd64'],
    ]);

    // The receiver comes up 20 s after the release.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, downUntil - Date.now())));
    const r = await receiver((_req, res) => res.writeHead(200).end('ok'), port);
    try {
      await eventually(() => r.got.length === 1, { timeoutMs: 40_000, message: 'the retried callback' });
      const { secret } = (await client.get('/v1/callbacks/secret')).body;
      expect(verifies(r.got[0]!, secret)).toBe(true);
      expect(JSON.parse(r.got[0]!.body).build).toMatchObject({ id: rebuilt.build, status: 'succeeded' });
      const [delivery] = (await client.get(`/v1/builds/${rebuilt.build}/deliveries`)).body.deliveries;
      expect(delivery.status).toBe('delivered');
      // Every try is listed: the refused ones while it was down, then the one it took.
      expect(delivery.tries.length).toBeGreaterThanOrEqual(3);
      expect(delivery.tries.slice(0, -1).every((t: any) => t.error?.includes('ECONNREFUSED'))).toBe(true);
      expect(delivery.tries.at(-1)).toMatchObject({ status: 200 });
    } finally {
      r.server.close();
    }
    // Removed, it rebuilds nothing more.
    expect((await client.request('DELETE', `/v1/watches/${watch.body.id}`)).status).toBe(204);
    expect((await client.get('/v1/watches')).body.watches).toEqual([]);
  }, 120_000);
});
