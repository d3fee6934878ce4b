import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { eventually } from './support/eventually.js';
import { runHostOn } from './support/go-programs.js';
import {
  buildMatrixFixture,
  MATRIX_TARGETS,
  MATRIX_VERSIONS,
  type MatrixFixture,
  type MatrixTarget,
  type MatrixVersion,
} from './support/host-matrix-fixture.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';

/**
 * A matrix of host releases in one build (docs/hosts.md, "A matrix: every release in one
 * build"): three releases of a real plugin-loading host, registered by their amd64 and arm64
 * executables, that differ only in the example.com/shared they link: 1.0.0 links v1.0.0,
 * 1.1.0 and 1.1.1 link v1.1.0, 1.1.1 from changed source at the same version. One
 * submission builds the plugin once for 1.0.0 and once for 1.1.0 and 1.1.1 together; the
 * real hosts say which artifact each loads, and the build document, the compatibility map
 * and artifacts.tar.gz must say the same.
 */
let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let go = '';
let work = '';
let fixture: MatrixFixture;
const cacheVolume = `plugforge-gomodcache-test-${randomBytes(4).toString('hex')}`;

const HOSTS = MATRIX_VERSIONS.map((v) => `mhost@${v}`);
const TARGETS = MATRIX_TARGETS.join(',');
/** The releases a plugin built against them loads into: 1.1.1's executable refuses every artifact. */
const LOADS: MatrixVersion[] = ['1.0.0', '1.1.0'];
const REFUSED = /plugin was built with a different version of package example\.com\/shared/;

/**
 * How a target's executable runs here: arm64 under the arm64 builder image's user-mode qemu,
 * with that image's C library, as plugforge's probe loads arm64 plugins (no binfmt_misc needed).
 */
const LOADER: Record<MatrixTarget, string[]> = {
  'linux-amd64': [],
  'linux-arm64': ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'],
};

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-matrix-'));
  fixture = await buildMatrixFixture(docker, go, work);
  service = await startService(
    'serve',
    await testConfig({
      PLUGFORGE_GOPROXY: `file://${fixture.proxyDir}`,
      PLUGFORGE_GOSUMDB: 'off',
      PLUGFORGE_MODULE_CACHE_VOLUME: cacheVolume,
      PLUGFORGE_CALLBACK_HOSTS: '127.0.0.1',
      PLUGFORGE_CALLBACK_PRIVATE: 'true',
    }),
  );
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
}, 300_000);

afterAll(async () => {
  await service?.stop();
  // The module cache of tenant "public" (no tokens configured): the prefix and the tenant.
  await docker
    ?.getVolume(`${cacheVolume}-public`)
    .remove()
    .catch(() => undefined);
  redis?.disconnect();
});

async function post(pathname: string, form: FormData): Promise<{ status: number; body: any }> {
  const res = await fetch(`${api.base}${pathname}`, { method: 'POST', body: form });
  return { status: res.status, body: await res.json() };
}

async function submit(hosts: string): Promise<string> {
  const form = new FormData();
  form.set('targets', TARGETS);
  form.set('hosts', hosts);
  form.set('source', new Blob([await tarOf(fixture.plugin, { gzip: true })]), 'plugin.tar.gz');
  const res = await post('/v1/builds', form);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.id;
}

/** What the real executable of release `v` for `target` says when it opens `artifact`. */
function runHost(v: MatrixVersion, target: MatrixTarget, artifact: Buffer): Promise<string> {
  return runHostOn(docker, `plugforge/build:${go}-${target}`, work, fixture.hosts[v][target], artifact, LOADER[target]);
}

/** Every release's real host opens the artifact built for `builtFor`: only that release loads it. */
async function expectLoadedOnlyBy(builtFor: MatrixVersion, target: MatrixTarget, artifact: Buffer): Promise<void> {
  for (const v of MATRIX_VERSIONS) {
    const out = await runHost(v, target, artifact);
    if (v === builtFor) expect(out, `${target} host ${v} on its own artifact`).toContain('open: <nil>');
    else expect(out, `${target} host ${v} on ${builtFor}'s artifact`).toMatch(REFUSED);
  }
}

/** The compatibility map of one artifact says what the real hosts did. */
async function expectCompatibility(build: string, target: MatrixTarget, builtFor: MatrixVersion): Promise<void> {
  const res = await api.get(`/v1/builds/${build}/artifacts/${target}/compatibility?host=mhost`);
  expect(res.status, res.text).toBe(200);
  expect(res.body.loadsInto).toEqual([`mhost@${builtFor}`]);
  const refused = [...res.body.refusedBy].sort((a: any, b: any) => a.release.localeCompare(b.release));
  expect(refused).toEqual(
    MATRIX_VERSIONS.filter((v) => v !== builtFor).map((v) => ({
      release: `mhost@${v}`,
      differing: expect.arrayContaining(['example.com/shared']),
    })),
  );
  expect(res.body.notCompared).toEqual([]);
}

/** The names of the files in a .tar.gz. */
async function tarNames(targz: Buffer): Promise<string[]> {
  const names: string[] = [];
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      names.push(header.name);
      stream.on('end', next).resume();
    });
    extract.on('finish', resolve).on('error', reject);
  });
  extract.end(gunzipSync(targz));
  await done;
  return names;
}

describe('three releases of one host, registered by their executables', () => {
  it('registers each with its amd64 and arm64 executables', async () => {
    for (const v of MATRIX_VERSIONS) {
      const form = new FormData();
      form.set('name', 'mhost');
      form.set('version', v);
      for (const t of MATRIX_TARGETS) form.append('hostBinary', new Blob([fixture.hosts[v][t]]), `mhost-${t}`);
      const res = await post('/v1/hosts', form);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({ name: 'mhost', version: v, from: 'binary', go, trimpath: false });
      expect(res.body.targets.map((t: { target: string }) => t.target).sort()).toEqual([...MATRIX_TARGETS]);
    }
  });

  it('built against one release at a time: 1.0.0 and 1.1.0 verify and load into their own host only, 1.1.1 is package_mismatch', async () => {
    const ids = await Promise.all(MATRIX_VERSIONS.map((v) => submit(`mhost@${v}`)));
    const docs = await Promise.all(ids.map((id) => api.waitFor(id, undefined, 300_000)));
    const by = Object.fromEntries(MATRIX_VERSIONS.map((v, i) => [v, docs[i]])) as Record<MatrixVersion, any>;
    for (const v of LOADS) {
      expect(by[v].status, JSON.stringify(by[v])).toBe('succeeded');
      for (const t of MATRIX_TARGETS) expect(by[v].targets[t].verify).toMatchObject({ status: 'passed', method: 'fingerprints' });
    }
    expect(by['1.1.1'].status, JSON.stringify(by['1.1.1'])).toBe('failed');
    for (const t of MATRIX_TARGETS) {
      expect(by['1.1.1'].targets[t].error.code).toBe('package_mismatch');
      expect(by['1.1.1'].targets[t].error.message).toContain('example.com/shared');
    }
    for (const v of LOADS) {
      for (const t of MATRIX_TARGETS) {
        const artifact = await api.bytes(`/v1/builds/${by[v].id}/artifacts/${t}`);
        expect(artifact.status).toBe(200);
        await expectLoadedOnlyBy(v, t, artifact.bytes);
        await expectCompatibility(by[v].id, t, v);
      }
    }
  }, 600_000);
});

describe('hosts=mhost@1.0.0,mhost@1.1.0,mhost@1.1.1: every release and target in one build', () => {
  let matrix: any;
  const cell = (v: MatrixVersion, t: MatrixTarget) => matrix.matrix.cells.find((c: any) => c.host === `mhost@${v}` && c.target === t);

  it('has a cell per release and target: 1.0.0 and 1.1.0 succeeded under the template names, 1.1.1 package_mismatch', async () => {
    matrix = await api.waitFor(await submit(HOSTS.join(',')), undefined, 300_000);
    expect(matrix.matrix, JSON.stringify(matrix)).toBeDefined();
    expect(matrix.matrix.hosts).toEqual(HOSTS);
    expect(matrix.matrix.cells).toHaveLength(6);
    for (const v of MATRIX_VERSIONS) for (const t of MATRIX_TARGETS) expect(cell(v, t), `${v} ${t}`).toBeDefined();
    for (const v of LOADS) {
      for (const t of MATRIX_TARGETS) {
        expect(cell(v, t), `${v} ${t}`).toMatchObject({
          status: 'succeeded',
          verify: { status: 'passed' },
          artifact: { name: `mplugin-${t}-for-mhost-v${v}.so`, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
        });
        expect(cell(v, t).error).toBeUndefined();
      }
    }
    for (const t of MATRIX_TARGETS) {
      expect(cell('1.1.1', t)).toMatchObject({ status: 'failed', error: { code: 'package_mismatch' } });
      // Naming the package and its module at the version both executables claim.
      expect(cell('1.1.1', t).error.message).toContain('example.com/shared v1.1.0');
    }
    // A cell failed: the matrix build failed, once all of them ended.
    expect(matrix.status).toBe('failed');
  });

  it('ran two builds: 1.0.0 alone, 1.1.0 and 1.1.1 together (the same bytes), the 1.1.1 cells reused from 1.1.0', async () => {
    const builds = [...matrix.matrix.builds].sort((a: any, b: any) => a.hosts[0].localeCompare(b.hosts[0]));
    expect(builds).toHaveLength(2);
    expect(builds).toMatchObject([
      { build: expect.any(String), hosts: ['mhost@1.0.0'] },
      { build: expect.any(String), hosts: ['mhost@1.1.0', 'mhost@1.1.1'] },
    ]);
    const [alone, together] = builds.map((b: { build: string }) => b.build);
    expect(alone).not.toBe(together);
    for (const t of MATRIX_TARGETS) {
      expect(cell('1.0.0', t).build).toBe(alone);
      expect(cell('1.1.0', t).build).toBe(together);
      expect(cell('1.1.1', t).build).toBe(together);
      expect(cell('1.0.0', t).reusedFrom).toBeUndefined();
      expect(cell('1.1.0', t).reusedFrom).toBeUndefined();
      expect(cell('1.1.1', t).reusedFrom).toBe('mhost@1.1.0');
    }
    // Ordinary builds of the tenant, each naming the matrix build; the group of 1.1.0 and 1.1.1
    // succeeded, as one of its releases matches.
    for (const id of [alone, together]) {
      const doc = (await api.get(`/v1/builds/${id}`)).body;
      expect(doc).toMatchObject({ id, status: 'succeeded' });
      // matrixOf names the matrix build and the releases this build stands for.
      expect(doc.matrixOf).toEqual({ build: matrix.id, hosts: id === alone ? ['mhost@1.0.0'] : ['mhost@1.1.0', 'mhost@1.1.1'] });
      for (const t of MATRIX_TARGETS) {
        const v: MatrixVersion = id === alone ? '1.0.0' : '1.1.0';
        expect(cell(v, t).artifact.sha256).toBe(doc.targets[t].artifact.sha256);
      }
    }
  });

  it("each succeeded cell's artifact loads into its own release's real host, and the others refuse it", async () => {
    for (const v of LOADS) {
      for (const t of MATRIX_TARGETS) {
        const res = await fetch(cell(v, t).artifact.url);
        expect(res.status, cell(v, t).artifact.url).toBe(200);
        await expectLoadedOnlyBy(v, t, Buffer.from(await res.arrayBuffer()));
      }
    }
  }, 300_000);

  it('the compatibility map of each cell says what the real hosts did', async () => {
    for (const v of LOADS) for (const t of MATRIX_TARGETS) await expectCompatibility(cell(v, t).build, t, v);
  });

  it("artifacts.tar.gz holds exactly the succeeded cells' artifacts, under the template names", async () => {
    const res = await api.bytes(`/v1/builds/${matrix.id}/artifacts.tar.gz`);
    expect(res.status).toBe(200);
    const names = await tarNames(res.bytes);
    const expected = LOADS.flatMap((v) => MATRIX_TARGETS.map((t) => `mplugin-${t}-for-mhost-v${v}.so`)).sort();
    expect(names.filter((n) => n.endsWith('.so')).sort()).toEqual(expected);
    expect(names.filter((n) => n.includes('v1.1.1'))).toEqual([]);
  });

  it('rebuilds the 1.0.0 build for a new release 1.2.0, whose real host loads the rebuild, and calls back signed', async () => {
    const got: { headers: http.IncomingHttpHeaders; body: string }[] = [];
    const receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const watched = matrix.matrix.builds.find((b: any) => b.hosts.includes('mhost@1.0.0')).build;
      const callback = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      const watch = await api.request('POST', '/v1/watches', JSON.stringify({ build: watched, host: 'mhost', callback }), {
        'Content-Type': 'application/json',
      });
      expect(watch.status, watch.text).toBe(201);
      // Release 1.2.0 ships the executables of 1.1.0 (its modules did not change).
      const form = new FormData();
      form.set('name', 'mhost');
      form.set('version', '1.2.0');
      for (const t of MATRIX_TARGETS) form.append('hostBinary', new Blob([fixture.hosts['1.1.0'][t]]), `host-${t}`);
      expect((await post('/v1/hosts', form)).status).toBe(201);
      const rebuilt = await eventually(
        async () => (await api.get('/v1/watches')).body.watches.find((w: any) => w.id === watch.body.id)?.builds[0],
        { timeoutMs: 30_000, message: "the watch's rebuild" },
      );
      expect(rebuilt.error, JSON.stringify(rebuilt)).toBeUndefined();
      const doc = await api.waitFor(rebuilt.build, undefined, 300_000);
      expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
      expect(doc.hostMatch.release).toBe('mhost@1.2.0');
      expect(doc.hostMatch.aligned).toEqual([{ path: 'example.com/shared', from: 'v1.0.0', to: 'v1.1.0' }]);
      const artifact = (await api.bytes(`/v1/builds/${rebuilt.build}/artifacts/linux-amd64`)).bytes;
      expect(await runHost('1.1.0', 'linux-amd64', artifact)).toContain('open: <nil>');
      await eventually(() => got.length === 1, { timeoutMs: 30_000, message: 'the callback' });
      const { secret } = (await api.get('/v1/callbacks/secret')).body;
      expect(got[0]!.headers['x-plugforge-signature']).toBe(`sha256=${createHmac('sha256', secret).update(got[0]!.body).digest('hex')}`);
      expect(JSON.parse(got[0]!.body).build).toMatchObject({ id: rebuilt.build, status: 'succeeded' });
    } finally {
      receiver.close();
    }
  }, 400_000);
});
