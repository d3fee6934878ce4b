import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireRedis, testConfig } from './support/env.js';
import { TenantClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { startFakeWorker } from './support/fixtures.js';

/**
 * Host releases resolved on first use (docs/hosts.md): a loopback server stands in for the
 * host's repository (`/server/v{version}/go.mod` and `GO_VERSION`, as gotify's template
 * fetches them), configured as the operator's source for "gotify". A build naming a release
 * nobody registered fetches its description once and registers it installation-wide.
 */
let redis: Redis;
let api: RunningService;
let worker: RunningService;
let source: Server;
let sourceBase = '';
const fetched: string[] = [];
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const ALICE = randomBytes(12).toString('hex');
let alice: TenantClient;
const GO_MOD = 'module github.com/gotify/server/v2\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n';

beforeAll(async () => {
  redis = await requireRedis();
  source = createServer((req, res) => {
    fetched.push(req.url ?? '');
    const files: Record<string, [number, string, Record<string, string>?]> = {
      '/server/v2.4.0/go.mod': [200, GO_MOD],
      '/server/v2.4.0/GO_VERSION': [200, '1.22.12\n'],
      '/server/v2.5.0/go.mod': [200, `${GO_MOD}// ${'x'.repeat(2 * 1024 * 1024)}\n`],
      '/server/v2.5.0/GO_VERSION': [200, '1.22.12\n'],
      '/server/v2.6.0/go.mod': [302, '', { Location: 'http://evil.example/go.mod' }],
      '/server/v2.6.0/GO_VERSION': [200, '1.22.12\n'],
      '/server/v2.7.0/GO_VERSION': [200, '1.22.12\n'],
    };
    if (req.url === '/server/v2.7.0/go.mod') {
      // Gone in the middle of its answer: headers and part of the go.mod, then the connection closed.
      res.writeHead(200, { 'Content-Length': '4096' });
      res.write(GO_MOD);
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    const [status, body, headers] = files[req.url ?? ''] ?? [404, 'not found'];
    res.writeHead(status, headers ?? {});
    res.end(body);
  });
  await new Promise<void>((resolve) => source.listen(0, '127.0.0.1', resolve));
  const port = (source.address() as { port: number }).port;
  sourceBase = `http://127.0.0.1:${port}`;
  const config = await testConfig({
    PLUGFORGE_TOKENS: `alice:${sha256(ALICE)}`,
    PLUGFORGE_HOST_SOURCES: JSON.stringify({
      gotify: { goMod: `${sourceBase}/server/v{version}/go.mod`, goVersion: `${sourceBase}/server/v{version}/GO_VERSION` },
      // The same server by another name, which the allowlist below leaves out.
      other: {
        goMod: `http://localhost:${port}/server/v{version}/go.mod`,
        goVersion: `http://localhost:${port}/server/v{version}/GO_VERSION`,
      },
    }),
    PLUGFORGE_HOST_FETCH_ALLOW: `127.0.0.1:${port}`,
  });
  api = await startService('api', config);
  worker = await startFakeWorker(config);
  alice = new TenantClient(`http://127.0.0.1:${api.port}`, ALICE);
  await alice.waitUntilReady((b) => b.workers >= 1, 30_000);
});

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  await new Promise<void>((resolve) => source?.close(() => resolve()));
  redis?.disconnect();
});

const submit = async (hosts: string) => alice.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), `targets=linux-amd64&hosts=${hosts}`);

describe('a host release resolved on first use', () => {
  it('is fetched once from the operator’s source, registered for the installation, and built against', async () => {
    const first = await submit('gotify@v2.4.0');
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect(first.body.hostMatch).toMatchObject({ from: 'goMod', release: 'gotify@2.4.0' });
    expect(first.body.go).toBe('1.22.12');
    const listed = await alice.get('/v1/hosts?name=gotify');
    expect(listed.body.hosts).toEqual([
      expect.objectContaining({
        name: 'gotify',
        version: '2.4.0',
        scope: 'installation',
        go: '1.22.12',
        from: 'goMod',
        modules: 1,
        source: `${sourceBase}/server/v2.4.0/go.mod`,
      }),
    ]);
    // Known from now on: a second build fetches nothing.
    const count = fetched.length;
    expect((await submit('gotify@2.4.0')).status).toBe(202);
    expect(fetched.length).toBe(count);
  });

  it('a version the source does not have is 404 host_release_unknown, with a sentence', async () => {
    const res = await submit('gotify@9.9.9');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('host_release_unknown');
    expect(res.body.error.message).toMatch(
      /its source has no such version \(http:\/\/127\.0\.0\.1:\d+\/server\/v9\.9\.9\/go\.mod answered 404\)\. Check the version, or register it by hand \(plugforge hosts add\)\./,
    );
  });

  it('refuses a description over the size limit, a redirect, a source gone mid-answer and a host not on the allowlist, registering nothing', async () => {
    const big = await submit('gotify@2.5.0');
    expect([big.status, big.body.error.code]).toEqual([502, 'host_source_too_large']);
    const moved = await submit('gotify@2.6.0');
    expect([moved.status, moved.body.error.code]).toEqual([502, 'host_source_failed']);
    expect(moved.body.error.message).toContain('a redirect to http://evil.example/go.mod: plugforge follows none');
    const brokenOff = await submit('gotify@2.7.0');
    expect([brokenOff.status, brokenOff.body.error.code]).toEqual([502, 'host_source_failed']);
    expect(brokenOff.body.error.message).toContain('broke off its answer part-way');
    expect((await alice.get('/healthz')).status).toBe(200);
    const elsewhere = await submit('other@1.0.0');
    expect([elsewhere.status, elsewhere.body.error.code]).toEqual([502, 'host_source_refused']);
    expect(fetched.some((u) => u.includes('1.0.0'))).toBe(false);
    const versions = ((await alice.get('/v1/hosts')).body.hosts as { name: string; version: string }[]).map(
      (h) => `${h.name}@${h.version}`,
    );
    expect(versions).toEqual(['gotify@2.4.0']);
  });
});
