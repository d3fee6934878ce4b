import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireCompiledCli, runCli } from './support/cli.js';
import { requireRedis, testConfig } from './support/env.js';
import { eventually } from './support/eventually.js';
import { hostBuildInfo, startFakeWorker } from './support/fixtures.js';
import { TenantClient } from './support/http.js';
import { GOTIFY_PLUGIN } from './support/source.js';

/**
 * `plugforge watch add|list|rm`, `plugforge callbacks secret` and `plugforge build --callback`
 * against a real API (Redis, a scripted worker) that sends callbacks to loopback: a watch's
 * rebuild shows in the list, and the server's refusals come out with their codes and sentences.
 */
let redis: Redis;
let api: RunningService;
let worker: RunningService;
let client: TenantClient;
let receiver: http.Server;
let hook = '';
const got: string[] = [];
let env: Record<string, string> = {};
let dir = '';
const TOKEN = randomBytes(12).toString('hex');

/** go version -m text of a release of host "w". */
const hostText = (v: string) => hostBuildInfo('example.com/w', v);

beforeAll(async () => {
  requireCompiledCli();
  redis = await requireRedis();
  const config = await testConfig({
    PLUGFORGE_TOKENS: `ci:${createHash('sha256').update(TOKEN).digest('hex')}`,
    PLUGFORGE_CALLBACK_HOSTS: '127.0.0.1',
    PLUGFORGE_CALLBACK_PRIVATE: 'true',
  });
  api = await startService('api', config);
  worker = await startFakeWorker(config);
  env = { PLUGFORGE_URL: `http://127.0.0.1:${api.port}`, PLUGFORGE_TOKEN: TOKEN };
  client = new TenantClient(env.PLUGFORGE_URL!, TOKEN);
  await client.waitUntilReady((b) => b.workers >= 1, 30_000);
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => (got.push(body), res.writeHead(204).end()));
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-cli-watch-'));
  for (const v of ['1.0.0', '1.2.0']) await writeFile(path.join(dir, `w-${v}`), hostText(`v${v}`));
  await mkdir(path.join(dir, 'plugin'));
  for (const [name, content] of Object.entries(GOTIFY_PLUGIN)) await writeFile(path.join(dir, 'plugin', name), content);
});

afterAll(async () => {
  receiver?.close();
  await worker?.stop();
  await api?.stop();
  redis?.disconnect();
});

const addRelease = (v: string) => runCli(['hosts', 'add', '--name', 'w', '--version', v, '--binary', path.join(dir, `w-${v}`)], { env });
const buildArgs = (...more: string[]) => ['build', path.join(dir, 'plugin'), '--targets', 'linux-amd64', '--quiet', ...more];

let watched = '';

describe('plugforge build --callback', () => {
  it("passes the callback to the build, whose summary reaches it, and a refused URL gives the server's code and sentence", async () => {
    expect((await addRelease('1.0.0')).code).toBe(0);
    const built = await runCli(buildArgs('--hosts', 'w@1.0.0', '--callback', hook, '--json', '--out', path.join(dir, 'out')), { env });
    expect(built.code, built.stderr).toBe(0);
    watched = JSON.parse(built.stdout).id;
    await eventually(() => got.length >= 1, { timeoutMs: 20_000, message: 'the callback' });
    expect(JSON.parse(got[0]!)).toMatchObject({ event: 'build.ended', build: { id: watched } });
    const { deliveries } = (await client.get(`/v1/builds/${watched}/deliveries`)).body;
    expect(deliveries).toMatchObject([{ url: hook, status: 'delivered' }]);

    const refused = await runCli(buildArgs('--callback', 'http://elsewhere.example/hook'), { env });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('[400 callback_refused]');
    expect(refused.stderr).toContain('elsewhere.example is not among the hosts this installation sends callbacks to (127.0.0.1)');
  });
});

describe('plugforge watch', () => {
  it('adds a watch, lists it, and a new release of its host rebuilds the build, shown as its last', async () => {
    expect((await runCli(['watch', 'list'], { env })).stdout).toBe('No watches.\n');
    const added = await runCli(['watch', 'add', '--build', watched, '--host', 'w', '--callback', hook], { env });
    expect(added.code, added.stderr).toBe(0);
    const id = /^watch (w[0-9a-f]+): every new release of w rebuilds build /.exec(added.stdout)?.[1];
    expect(id, added.stdout).toBeDefined();
    expect(added.stdout).toContain(`plugforge watch rm ${id}`);
    const json = await runCli(['watch', 'list', '--json'], { env });
    expect(JSON.parse(json.stdout)).toMatchObject([{ id, build: watched, host: 'w', callback: hook, builds: [] }]);
    const before = (await runCli(['watch', 'list'], { env })).stdout.trim().split('\n');
    expect(before[0]).toMatch(/^ID\s+HOST\s+BUILD\s+CALLBACK\s+LAST/);
    expect(before[1]!.split(/\s+/)).toEqual([id, 'w', watched, hook, '-']);

    expect((await addRelease('1.2.0')).code).toBe(0);
    const rebuilt = await eventually(
      async () => (await client.get('/v1/watches')).body.watches[0]?.builds[0]?.build as string | undefined,
      { timeoutMs: 20_000, message: "the watch's rebuild" },
    );
    const after = (await runCli(['watch', 'list'], { env })).stdout.trim().split('\n');
    expect(after[1]!.split(/\s+/)).toEqual([id, 'w', watched, hook, 'w@1.2.0', '→', rebuilt]);

    const rm = await runCli(['watch', 'rm', id!], { env });
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe(`removed watch ${id}\n`);
    expect((await runCli(['watch', 'list', '--json'], { env })).stdout.trim()).toBe('[]');
  });

  it("reports the server's refusals with their codes and sentences (exit 3), and usage errors with exit 2", async () => {
    const unknown = await runCli(['watch', 'add', '--build', 'nosuchbuild', '--host', 'w'], { env });
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('No build "nosuchbuild". Watch one of your builds by its id. [404 build_not_found]');
    const refused = await runCli(['watch', 'add', '--build', watched, '--host', 'w', '--callback', 'http://elsewhere.example/'], { env });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('elsewhere.example is not among the hosts this installation sends callbacks to');
    expect(refused.stderr).toContain('[400 callback_refused]');
    const asJson = await runCli(['watch', 'add', '--build', watched, '--host', 'Not A Host', '--json'], { env });
    expect(asJson.code).toBe(3);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ error: { code: 'invalid_watch', status: 400 } });
    const rm = await runCli(['watch', 'rm', 'wnosuch'], { env });
    expect(rm.code).toBe(3);
    expect(rm.stderr).toContain('No watch "wnosuch" of yours; GET /v1/watches lists them. [404 watch_not_found]');

    const noHost = await runCli(['watch', 'add', '--build', watched], { env });
    expect(noHost.code).toBe(2);
    expect(noHost.stderr).toContain('watch add needs --build');
    expect((await runCli(['watch', 'rm'], { env })).code).toBe(2);
    expect((await runCli(['watch', 'rm', 'a', 'b'], { env })).code).toBe(2);
    expect((await runCli(['watch', 'frobnicate'], { env })).code).toBe(2);
    expect((await runCli(['callbacks', 'frobnicate'], { env })).code).toBe(2);
    expect((await runCli(['watch', 'list'], { env: { ...env, PLUGFORGE_TOKEN: 'wrong' } })).code).toBe(3);
  });
});

describe('plugforge callbacks secret', () => {
  it('prints the secret callbacks are signed with, alone on stdout, and with --json its header and algorithm', async () => {
    const { secret } = (await client.get('/v1/callbacks/secret')).body;
    const plain = await runCli(['callbacks', 'secret'], { env });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toBe(`${secret}\n`);
    expect(plain.stderr).toContain('X-Plugforge-Signature');
    const json = await runCli(['callbacks', 'secret', '--json'], { env });
    expect(JSON.parse(json.stdout)).toEqual({ secret, header: 'X-Plugforge-Signature', algorithm: 'HMAC-SHA256' });
  });
});

describe('plugforge build --hosts with several releases (a matrix)', () => {
  it('follows the cells, writes each artifact under its release name, the grid with a HOST column, and a JUnit testsuite per release', async () => {
    const out = path.join(dir, 'matrix-out');
    const junit = path.join(dir, 'matrix.xml');
    const built = await runCli(
      [
        'build',
        path.join(dir, 'plugin'),
        '--targets',
        'linux-amd64,linux-arm64',
        '--hosts',
        'w@1.0.0,w@1.2.0',
        '--out',
        out,
        '--junit',
        junit,
      ],
      { env },
    );
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toMatch(/matrix \w+ accepted: w@1\.0\.0, w@1\.2\.0 × linux-amd64, linux-arm64 in 1 build\(s\)/);
    const names = (await readdir(out)).filter((n) => n.endsWith('.so')).sort();
    expect(names).toEqual([
      'gotify-hello-linux-amd64-for-w-v1.0.0.so',
      'gotify-hello-linux-amd64-for-w-v1.2.0.so',
      'gotify-hello-linux-arm64-for-w-v1.0.0.so',
      'gotify-hello-linux-arm64-for-w-v1.2.0.so',
    ]);
    const grid = built.stdout.trim().split('\n');
    expect(grid[0]).toMatch(/^HOST\s+TARGET\s+STATUS\s+VERIFY/);
    expect(grid.filter((l) => /^w@1\.2\.0\s+linux-arm64\s+succeeded\s+/.test(l))).toHaveLength(1);
    expect(built.stdout).toContain('built with w@1.0.0');
    const xml = await readFile(junit, 'utf8');
    expect(xml.match(/<testsuite /g)).toHaveLength(2);
    expect(xml).toContain('name="plugforge gotify-hello for w@1.2.0" tests="2" failures="0"');
  });
});
