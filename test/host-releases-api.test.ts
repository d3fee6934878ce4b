import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { readBody, readTar } from '../src/archive/tar-streams.js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireRedis, testConfig } from './support/env.js';
import { TenantClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { hostBuildInfo, startFakeWorker } from './support/fixtures.js';

/**
 * Host releases by name (docs/hosts.md) through the API, on real Redis with a scripted
 * worker: registering (tenant and operator), listing, reading, removing, every refusal,
 * the operator token opening nothing else, and a build with hosts= described exactly as
 * the upload of the same description. The real-binary round trip is test/host-releases.test.ts.
 */
let redis: Redis;
let api: RunningService;
let worker: RunningService;
let base = '';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const ALICE = randomBytes(12).toString('hex');
const BOB = randomBytes(12).toString('hex');
const CAROL = randomBytes(12).toString('hex');
const OPERATOR = randomBytes(12).toString('hex');
let alice: TenantClient;
let bob: TenantClient;
let operator: TenantClient;

/** The text of `go version -m` for a Go 1.22.12 host linking one module. */
const HOST_TEXT = hostBuildInfo('example.com/host', '(devel)', '1.22.12', ['example.com/shared v1.0.0 h1:abc=']);
const HOST_GO_MOD = 'module example.com/host\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n';

beforeAll(async () => {
  redis = await requireRedis();
  const config = await testConfig({
    PLUGFORGE_TOKENS: `alice:${sha256(ALICE)},bob:${sha256(BOB)},carol:${sha256(CAROL)}`,
    PLUGFORGE_OPERATOR_TOKENS: sha256(OPERATOR),
    PLUGFORGE_HOSTS_MAX_PER_TENANT: '4',
  });
  api = await startService('api', config);
  worker = await startFakeWorker(config);
  base = `http://127.0.0.1:${api.port}`;
  alice = new TenantClient(base, ALICE);
  bob = new TenantClient(base, BOB);
  operator = new TenantClient(base, OPERATOR);
  // The build's Go release must be one a worker reports, else it would wait for images.
  await alice.waitUntilReady((b) => b.workers >= 1, 30_000);
});

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  redis?.disconnect();
});

/** POST /v1/hosts as multipart: fields, and hostBinary parts or a hostGoMod part. */
async function register(
  token: string | undefined,
  fields: Record<string, string>,
  parts: { hostBinary?: (Buffer | string)[]; hostGoMod?: string } = {},
) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  for (const b of parts.hostBinary ?? []) form.append('hostBinary', new Blob([b]), 'host');
  if (parts.hostGoMod !== undefined) form.set('hostGoMod', new Blob([parts.hostGoMod]), 'go.mod');
  const res = await fetch(`${base}/v1/hosts`, { method: 'POST', body: form, headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, location: res.headers.get('location') };
}

/** POST /v1/builds of the gotify example plugin as multipart, with option fields and optional hostBinary parts. */
async function build(token: string, fields: Record<string, string>, hostBinary?: Buffer | string) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('source', new Blob([await tarOf(GOTIFY_PLUGIN, { gzip: true })]), 'plugin.tar.gz');
  if (hostBinary !== undefined) form.set('hostBinary', new Blob([hostBinary]), 'host');
  const res = await fetch(`${base}/v1/builds`, { method: 'POST', body: form, headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as any };
}

describe('registering host releases', () => {
  it('registers a release from the text of go version -m, answering 201 with its document', async () => {
    const res = await register(ALICE, { name: 'gotify', version: 'v2.4.0' }, { hostBinary: [HOST_TEXT] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.location).toBe('/v1/hosts/gotify/2.4.0');
    expect(res.body).toMatchObject({
      name: 'gotify',
      version: '2.4.0',
      scope: 'tenant',
      go: '1.22.12',
      from: 'text',
      trimpath: false,
      tags: [],
      modules: 1,
      targets: [],
    });
    expect(Date.parse(res.body.registeredAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('refuses the same release again (v2.4.0 and 2.4.0 are one), saying how to remove it first', async () => {
    const res = await register(ALICE, { name: 'gotify', version: '2.4.0' }, { hostBinary: [HOST_TEXT] });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('host_release_exists');
    expect(res.body.error.message).toContain('plugforge hosts rm gotify@2.4.0');
    // Another tenant's scope is its own: bob registers the same name and version.
    expect((await register(BOB, { name: 'gotify', version: '2.4.0' }, { hostBinary: [HOST_TEXT] })).status).toBe(201);
  });

  it('registers a release from its go.mod and Go release', async () => {
    const res = await register(ALICE, { name: 'gotify', version: '2.3.0', go: '1.22.12' }, { hostGoMod: HOST_GO_MOD });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ name: 'gotify', version: '2.3.0', go: '1.22.12', from: 'goMod', modules: 1, targets: [] });
    expect(res.body).not.toHaveProperty('trimpath');
  });

  it('refuses bad names and versions, a host described twice or not at all, and go beside a binary', async () => {
    const cases: [Record<string, string>, Parameters<typeof register>[2], number, string][] = [
      [{ name: 'Gotify', version: '2.4.1' }, { hostBinary: [HOST_TEXT] }, 400, 'invalid_host_release'],
      [{ name: 'gotify/../x', version: '2.4.1' }, { hostBinary: [HOST_TEXT] }, 400, 'invalid_host_release'],
      [{ name: 'gotify', version: 'latest' }, { hostBinary: [HOST_TEXT] }, 400, 'invalid_host_release'],
      [{ name: 'gotify', version: `1${'0'.repeat(64)}` }, { hostBinary: [HOST_TEXT] }, 400, 'invalid_host_release'],
      [
        { name: 'gotify', version: '2.4.1', go: '1.22.12' },
        { hostBinary: [HOST_TEXT], hostGoMod: HOST_GO_MOD },
        400,
        'host_described_twice',
      ],
      [{ name: 'gotify', version: '2.4.1' }, {}, 400, 'host_missing'],
      [{ name: 'gotify', version: '2.4.1' }, { hostGoMod: HOST_GO_MOD }, 400, 'invalid_option'],
      [{ name: 'gotify', version: '2.4.1', go: '1.22.12' }, { hostBinary: [HOST_TEXT] }, 400, 'invalid_option'],
      [{ name: 'gotify', version: '2.4.1', colour: 'red' }, { hostBinary: [HOST_TEXT] }, 400, 'unknown_option'],
      // The build's own readers and their codes: a devel toolchain, then not a build info at all.
      [
        { name: 'gotify', version: '2.4.1' },
        { hostBinary: [HOST_TEXT.replace('go1.22.12', 'devel go1.23-abc')] },
        422,
        'host_go_unsupported',
      ],
    ];
    for (const [fields, parts, status, code] of cases) {
      const res = await register(ALICE, fields, parts);
      expect([res.status, res.body?.error?.code], JSON.stringify({ fields, body: res.body })).toEqual([status, code]);
      expect(res.body.error.message.length).toBeGreaterThan(20);
    }
    // Nothing of those was registered.
    expect((await alice.get('/v1/hosts?name=gotify')).body.hosts.map((h: any) => h.version)).toEqual(['2.3.0', '2.4.0']);
  });

  it("holds the form to a build's caps on host parts: at most four, and text of at most 1 MiB", async () => {
    const five = await register(
      ALICE,
      { name: 'caps', version: '1' },
      { hostBinary: [HOST_TEXT, HOST_TEXT, HOST_TEXT, HOST_TEXT, HOST_TEXT] },
    );
    expect([five.status, five.body.error.code]).toEqual([400, 'invalid_option']);
    const huge = await register(ALICE, { name: 'caps', version: '1' }, { hostBinary: [HOST_TEXT + '#'.repeat(1024 * 1024)] });
    expect([huge.status, huge.body.error.code]).toEqual([413, 'host_too_large']);
    // A build's source part has no place here.
    const form = new FormData();
    form.set('name', 'caps');
    form.set('version', '1');
    form.set('source', new Blob([await tarOf(GOTIFY_PLUGIN, { gzip: true })]), 'plugin.tar.gz');
    const res = await fetch(`${base}/v1/hosts`, { method: 'POST', body: form, headers: { Authorization: `Bearer ${ALICE}` } });
    expect([res.status, ((await res.json()) as any).error.code]).toEqual([400, 'unknown_option']);
    // None of them was registered.
    expect((await alice.get('/v1/hosts/caps/1')).status).toBe(404);
  });

  it('refuses a request without a valid token before reading it', async () => {
    const res = await register(undefined, { name: 'gotify', version: '9.9.9' }, { hostBinary: [HOST_TEXT] });
    expect(res.status).toBe(401);
    expect((await register('not-a-token', { name: 'gotify', version: '9.9.9' }, { hostBinary: [HOST_TEXT] })).status).toBe(401);
  });
});

describe('the operator and the installation scope', () => {
  it('registers installation-wide releases with the operator token, which every tenant sees with scope installation', async () => {
    const res = await register(OPERATOR, { name: 'flow', version: '1.0.0' }, { hostBinary: [HOST_TEXT] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.scope).toBe('installation');
    for (const client of [alice, bob]) {
      const list = (await client.get('/v1/hosts')).body.hosts;
      expect(list.find((h: any) => h.name === 'flow')).toMatchObject({ version: '1.0.0', scope: 'installation' });
    }
    // Each tenant sees its own and the installation's, never another tenant's.
    expect((await alice.get('/v1/hosts')).body.hosts.map((h: any) => `${h.name}@${h.version}:${h.scope}`)).toEqual([
      'flow@1.0.0:installation',
      'gotify@2.3.0:tenant',
      'gotify@2.4.0:tenant',
    ]);
    expect((await bob.get('/v1/hosts')).body.hosts.map((h: any) => `${h.name}@${h.version}:${h.scope}`)).toEqual([
      'flow@1.0.0:installation',
      'gotify@2.4.0:tenant',
    ]);
    // The operator sees the installation's only.
    expect((await operator.get('/v1/hosts')).body.hosts.map((h: any) => `${h.name}@${h.version}`)).toEqual(['flow@1.0.0']);
    expect((await alice.get('/v1/hosts/flow/v1.0.0')).body).toMatchObject({ name: 'flow', version: '1.0.0', scope: 'installation' });
  });

  it("lets no tenant remove the installation's release, and the operator none of a tenant's", async () => {
    const tenant = await alice.request('DELETE', '/v1/hosts/flow/1.0.0');
    expect(tenant.status).toBe(404);
    expect(tenant.body.error.code).toBe('host_release_unknown');
    expect((await operator.request('DELETE', '/v1/hosts/gotify/2.3.0')).status).toBe(404);
    expect((await alice.get('/v1/hosts/gotify/2.3.0')).status).toBe(200);
  });

  it('opens no other route with the operator token', async () => {
    for (const p of ['/v1/builds', '/v1/toolchains', '/v1/openapi.json']) {
      const res = await operator.get(p);
      expect([p, res.status]).toEqual([p, 401]);
    }
    const submitted = await operator.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }));
    expect(submitted.status).toBe(401);
    expect((await operator.get('/v1/worker/blobs/' + '0'.repeat(64))).status).toBe(403);
  });
});

describe('the per-tenant cap', () => {
  it('refuses a release past PLUGFORGE_HOSTS_MAX_PER_TENANT with 429, and takes one again once one is removed', async () => {
    expect((await register(ALICE, { name: 'cap', version: '1' }, { hostBinary: [HOST_TEXT] })).status).toBe(201);
    expect((await register(ALICE, { name: 'cap', version: '2' }, { hostBinary: [HOST_TEXT] })).status).toBe(201);
    const over = await register(ALICE, { name: 'cap', version: '3' }, { hostBinary: [HOST_TEXT] });
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({ code: 'too_many_host_releases', limit: 4 });
    // Bob's scope is his own.
    expect((await register(BOB, { name: 'cap', version: '3' }, { hostBinary: [HOST_TEXT] })).status).toBe(201);
    const removed = await alice.request('DELETE', '/v1/hosts/cap/v1');
    expect(removed.status).toBe(204);
    expect((await alice.get('/v1/hosts/cap/1')).status).toBe(404);
    expect((await register(ALICE, { name: 'cap', version: '3' }, { hostBinary: [HOST_TEXT] })).status).toBe(201);
  });
});

describe('builds against a registered release', () => {
  it('describes the build exactly as the upload of the same text, and names the release', async () => {
    const uploaded = await build(ALICE, { targets: 'linux-amd64' }, HOST_TEXT);
    expect(uploaded.status, JSON.stringify(uploaded.body)).toBe(202);
    const named = await build(ALICE, { targets: 'linux-amd64', hosts: 'gotify@v2.4.0' });
    expect(named.status, JSON.stringify(named.body)).toBe(202);
    expect(named.body.hostMatch.release).toBe('gotify@2.4.0');
    const { release, ...rest } = named.body.hostMatch;
    expect(rest).toEqual(uploaded.body.hostMatch);
    expect([named.body.go, named.body.build]).toEqual([uploaded.body.go, uploaded.body.build]);
    expect(named.body.go).toBe('1.22.12');
  });

  it("takes a release given by its go.mod, and the installation's when the tenant has none", async () => {
    const fromGoMod = await build(ALICE, { targets: 'linux-amd64', hosts: 'gotify@2.3.0' });
    expect(fromGoMod.status, JSON.stringify(fromGoMod.body)).toBe(202);
    expect(fromGoMod.body.hostMatch).toMatchObject({ from: 'goMod', release: 'gotify@2.3.0', modules: 1 });
    expect(fromGoMod.body.go).toBe('1.22.12');
    const installation = await build(BOB, { targets: 'linux-amd64', hosts: 'flow@1.0.0' });
    expect(installation.status, JSON.stringify(installation.body)).toBe(202);
    expect(installation.body.hostMatch).toMatchObject({ from: 'binary', release: 'flow@1.0.0' });
  });

  it('refuses an unknown release (404), one named beside an uploaded host (400), and more than 8 releases or one named twice (400)', async () => {
    const unknown = await build(ALICE, { targets: 'linux-amd64', hosts: 'gotify@9.9.9' });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'host_release_unknown']);
    expect(unknown.body.error.message).toContain('gotify@9.9.9');
    expect(unknown.body.error.message).toContain('plugforge hosts add');
    // Named in the query of a raw upload, it is refused before the body is read.
    const early = await alice.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64&hosts=gotify@9.9.9');
    expect([early.status, early.body.error.code, early.headers.get('connection')]).toEqual([404, 'host_release_unknown', 'close']);
    // Bob's release is not Alice's.
    expect((await build(ALICE, { targets: 'linux-amd64', hosts: 'cap@3' })).status).toBe(202);
    await alice.request('DELETE', '/v1/hosts/cap/3');
    expect((await build(ALICE, { targets: 'linux-amd64', hosts: 'cap@3' })).status).toBe(404);
    const twice = await build(ALICE, { targets: 'linux-amd64', hosts: 'gotify@2.4.0' }, HOST_TEXT);
    expect([twice.status, twice.body.error.code]).toEqual([400, 'host_described_twice']);
    const goModTwice = await build(ALICE, { targets: 'linux-amd64', hosts: 'gotify@2.4.0', hostGoMod: HOST_GO_MOD });
    expect([goModTwice.status, goModTwice.body.error.code]).toEqual([400, 'host_described_twice']);
    const nine = Array.from({ length: 9 }, (_, i) => `gotify@2.${i}.0`).join(',');
    const tooMany = await build(ALICE, { targets: 'linux-amd64', hosts: nine });
    expect([tooMany.status, tooMany.body.error.code]).toEqual([400, 'invalid_option']);
    expect(tooMany.body.error.message).toContain('at most 8');
    const twiceNamed = await build(ALICE, { targets: 'linux-amd64', hosts: 'gotify@2.4.0,gotify@v2.4.0' });
    expect([twiceNamed.status, twiceNamed.body.error.code]).toEqual([400, 'invalid_option']);
    expect(twiceNamed.body.error.message).toContain('gotify@2.4.0 twice');
    const oneUnknown = await build(ALICE, { targets: 'linux-amd64', hosts: 'gotify@2.4.0,gotify@9.9.9' });
    expect([oneUnknown.status, oneUnknown.body.error.code]).toEqual([404, 'host_release_unknown']);
  });
});

describe('a matrix of releases (docs/hosts.md, "A matrix")', () => {
  /** go version -m text of host release `m`: one or two modules, at `version`. */
  const mText = (version: string, extra = false) =>
    HOST_TEXT.replace(
      '\tdep\texample.com/shared\tv1.0.0\th1:abc=',
      `\tdep\texample.com/shared\t${version}\th1:abc=${extra ? '\n\tdep\texample.com/extra\tv1.0.0\th1:def=' : ''}`,
    );

  let carol: TenantClient;
  beforeAll(async () => {
    carol = new TenantClient(base, CAROL);
    for (const [version, text] of [
      ['1.0.0', mText('v1.0.0')],
      ['1.1.0', mText('v1.1.0')],
      ['2.0.0', mText('v1.1.0', true)],
    ] as const)
      expect((await register(CAROL, { name: 'm', version }, { hostBinary: [text] })).status).toBe(201);
  });

  it('builds every release and target, releases that need the same bytes once, each cell under its release name', async () => {
    const res = await build(CAROL, { targets: 'linux-amd64,linux-arm64', hosts: 'm@1.0.0,m@1.1.0,m@2.0.0' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.targets).toEqual({});
    // The plugin requires nothing, so 1.0.0 and 1.1.0 need the same bytes; 2.0.0 links another module (the probe's host differs).
    expect(res.body.matrix.hosts).toEqual(['m@1.0.0', 'm@1.1.0', 'm@2.0.0']);
    expect(res.body.matrix.builds.map((b: any) => b.hosts)).toEqual([['m@1.0.0', 'm@1.1.0'], ['m@2.0.0']]);
    const doc = await carol.waitFor(res.body.id, undefined, 30_000);
    expect(doc.status, JSON.stringify(doc.matrix.cells)).toBe('succeeded');
    const [first, second] = doc.matrix.builds.map((b: any) => b.build);
    expect(doc.matrix.cells.map((c: any) => [c.host, c.target, c.status, c.build, c.reusedFrom ?? null, c.artifact.name])).toEqual([
      ['m@1.0.0', 'linux-amd64', 'succeeded', first, null, 'gotify-hello-linux-amd64-for-m-v1.0.0.so'],
      ['m@1.0.0', 'linux-arm64', 'succeeded', first, null, 'gotify-hello-linux-arm64-for-m-v1.0.0.so'],
      ['m@1.1.0', 'linux-amd64', 'succeeded', first, 'm@1.0.0', 'gotify-hello-linux-amd64-for-m-v1.1.0.so'],
      ['m@1.1.0', 'linux-arm64', 'succeeded', first, 'm@1.0.0', 'gotify-hello-linux-arm64-for-m-v1.1.0.so'],
      ['m@2.0.0', 'linux-amd64', 'succeeded', second, null, 'gotify-hello-linux-amd64-for-m-v2.0.0.so'],
      ['m@2.0.0', 'linux-arm64', 'succeeded', second, null, 'gotify-hello-linux-arm64-for-m-v2.0.0.so'],
    ]);
    // A cell's artifact is its build's target's, downloaded from the matrix under the release's name.
    expect(doc.matrix.cells[2].artifact.url).toBe(`${base}/v1/builds/${res.body.id}/artifacts/linux-amd64?host=m%401.1.0`);
    const cellBytes = await carol.bytes(`/v1/builds/${res.body.id}/artifacts/linux-amd64?host=m%401.1.0`);
    expect(cellBytes.headers.get('content-disposition')).toBe('attachment; filename="gotify-hello-linux-amd64-for-m-v1.1.0.so"');
    expect(cellBytes.headers.get('x-plugforge-sha256')).toBe(doc.matrix.cells[2].artifact.sha256);
    expect(cellBytes.bytes.equals((await carol.bytes(`/v1/builds/${first}/artifacts/linux-amd64`)).bytes)).toBe(true);
    const noCell = await carol.get(`/v1/builds/${res.body.id}/artifacts/linux-amd64?host=m%409.9.9`);
    expect([noCell.status, noCell.body.error.code]).toEqual([404, 'unknown_cell']);
    const group = (await carol.get(`/v1/builds/${first}`)).body;
    expect(group.matrixOf).toEqual({ build: res.body.id, hosts: ['m@1.0.0', 'm@1.1.0'] });
    expect(group.hostMatch.release).toBe('m@1.0.0');
    // The list shows the matrix build with its cells, and its builds.
    const listed = (await carol.get('/v1/builds?limit=10')).body.builds;
    expect(listed.find((b: any) => b.id === res.body.id).cells).toHaveLength(6);
    expect(listed.filter((b: any) => b.matrixOf?.build === res.body.id)).toHaveLength(2);
    // artifacts.tar.gz holds every cell's artifact under its name.
    const tar = await carol.bytes(`/v1/builds/${res.body.id}/artifacts.tar.gz`);
    expect(tar.status).toBe(200);
    const names = await tarNames(tar.bytes);
    expect(names.filter((n) => n.endsWith('.so')).sort()).toEqual(doc.matrix.cells.map((c: any) => c.artifact.name).sort());
    expect(names).toContain('SHA256SUMS');
  });

  it('cancels every build of a matrix, and says so in every cell', async () => {
    const res = await build(CAROL, { targets: 'linux-amd64', hosts: 'm@1.0.0,m@2.0.0' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const canceled = await carol.request('DELETE', `/v1/builds/${res.body.id}`);
    expect(canceled.status).toBe(202);
    const doc = await carol.waitFor(res.body.id, undefined, 30_000);
    expect(doc.status).toBe('canceled');
    expect(doc.canceledAt).toBeDefined();
    for (const b of doc.matrix.builds) expect((await carol.get(`/v1/builds/${b.build}`)).body.status).toBe('canceled');
    expect((await carol.request('DELETE', `/v1/builds/${res.body.id}`)).status).toBe(409);
  });
});

/** The entry names of a gzipped tar. */
async function tarNames(gz: Buffer): Promise<string[]> {
  const names: string[] = [];
  await readTar(Readable.from([gunzipSync(gz)]), async (header, body) => {
    names.push(header.name);
    await readBody(body, 64 << 20, () => new Error(`${header.name} is too large`));
  });
  return names;
}
