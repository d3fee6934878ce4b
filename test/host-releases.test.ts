import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { runHostOn, shInImage, writeTree } from './support/go-programs.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';

/**
 * A host release registered by name from a real host executable (a plugin-loading program
 * built here in the Go 1.22 builder image), then built against by hosts=<name>@<version>:
 * the same host match, the same fingerprint verification and the same artifact as the
 * upload of the same executable, and the real host loads it.
 */
let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let go = '';
let work = '';
let host: Buffer;
/** The same host built with -trimpath: every package's fingerprint differs from the plain build's. */
let trimmedHost: Buffer;

const HOST = {
  'go.mod': 'module example.com/host\n\ngo 1.22\n',
  'main.go':
    'package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"plugin"\n)\n\nfunc main() {\n\t_, err := plugin.Open(os.Args[1])\n\tfmt.Println("open:", err)\n}\n',
};
const PLUGIN = {
  'go.mod': 'module example.com/hello\n\ngo 1.22\n',
  'plugin.go': 'package main\n\n// Hello greets.\nfunc Hello() string { return "hello" }\n\nfunc main() {}\n',
};

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-releases-'));
  await chmod(work, 0o777);
  await writeTree(work, HOST);
  await shInImage(docker, `plugforge/build:${go}-linux-amd64`, work, 'CGO_ENABLED=1 go build -o host .');
  host = await readFile(path.join(work, 'host'));
  await shInImage(docker, `plugforge/build:${go}-linux-amd64`, work, 'CGO_ENABLED=1 go build -trimpath -o host-trimmed .');
  trimmedHost = await readFile(path.join(work, 'host-trimmed'));
  service = await startService('serve', await testConfig());
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
}, 300_000);

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

async function post(pathname: string, form: FormData): Promise<{ status: number; body: any }> {
  const res = await fetch(`${api.base}${pathname}`, { method: 'POST', body: form });
  return { status: res.status, body: await res.json() };
}

async function buildForm(fields: Record<string, string>, hostBinary?: Buffer): Promise<FormData> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('source', new Blob([await tarOf(PLUGIN, { gzip: true })]), 'plugin.tar.gz');
  if (hostBinary) form.set('hostBinary', new Blob([hostBinary]), 'host');
  return form;
}

describe('a host release registered from a real executable', () => {
  let registered: any;
  let builtAgainst: any;

  it('registers it with its target, package count and sha256', async () => {
    const form = new FormData();
    form.set('name', 'hello-host');
    form.set('version', 'v1.0.0');
    form.set('hostBinary', new Blob([host]), 'host');
    const res = await post('/v1/hosts', form);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    registered = res.body;
    expect(registered).toMatchObject({
      name: 'hello-host',
      version: '1.0.0',
      scope: 'tenant',
      from: 'binary',
      go,
      trimpath: false,
      tags: [],
    });
    expect(registered.targets).toHaveLength(1);
    expect(registered.targets[0]).toMatchObject({
      target: 'linux-amd64',
      size: host.length,
      sha256: createHash('sha256').update(host).digest('hex'),
    });
    expect(registered.targets[0].packages).toBeGreaterThan(10);
    const list = (await api.get('/v1/hosts?name=hello-host')).body.hosts;
    expect(list).toEqual([registered]);
  });

  it('builds against it as against the uploaded executable: same match, fingerprints passed, same artifact, and the host loads it', async () => {
    const uploaded = await post('/v1/builds', await buildForm({ targets: 'linux-amd64,linux-arm64' }, host));
    expect(uploaded.status, JSON.stringify(uploaded.body)).toBe(202);
    const named = await post('/v1/builds', await buildForm({ targets: 'linux-amd64,linux-arm64', hosts: 'hello-host@1.0.0' }));
    expect(named.status, JSON.stringify(named.body)).toBe(202);
    const a = await api.waitFor(uploaded.body.id, undefined, 300_000);
    const b = await api.waitFor(named.body.id, undefined, 300_000);
    expect([a.status, b.status], JSON.stringify({ a, b })).toEqual(['succeeded', 'succeeded']);
    expect(b.hostMatch.release).toBe('hello-host@1.0.0');
    const { release: _, ...match } = b.hostMatch;
    expect(match).toEqual(a.hostMatch);
    expect(b.hostBinaries).toEqual(a.hostBinaries);
    expect(b.go).toBe(a.go);
    for (const doc of [a, b]) {
      expect(doc.targets['linux-amd64'].verify).toMatchObject({
        status: 'passed',
        method: 'fingerprints',
        fingerprints: { hostBinary: registered.targets[0].sha256, differing: [] },
      });
      expect(doc.targets['linux-amd64'].verify.fingerprints.compared).toBeGreaterThan(10);
      // No executable for arm64 was given: it is proved by the probe, as an upload would be.
      expect(doc.targets['linux-arm64'].verify.method).not.toBe('fingerprints');
    }
    expect(b.targets['linux-amd64'].artifact.sha256).toBe(a.targets['linux-amd64'].artifact.sha256);
    builtAgainst = b;
    const artifact = await api.bytes(`/v1/builds/${b.id}/artifacts/linux-amd64`);
    expect(await runHostOn(docker, `plugforge/build:${go}-linux-amd64`, work, host, artifact.bytes)).toContain('open: <nil>');
  });

  it('says which registered releases the artifact loads into and which refuse it, as their own executables do', async () => {
    const trimmed = new FormData();
    trimmed.set('name', 'hello-host');
    trimmed.set('version', '2.0.0');
    trimmed.set('hostBinary', new Blob([trimmedHost]), 'host');
    expect((await post('/v1/hosts', trimmed)).status).toBe(201);
    const byGoMod = new FormData();
    for (const [k, v] of Object.entries({ name: 'hello-host', version: '0.9.0', go })) byGoMod.set(k, v);
    byGoMod.set('hostGoMod', new Blob([HOST['go.mod']]), 'go.mod');
    expect((await post('/v1/hosts', byGoMod)).status).toBe(201);

    const amd64 = (await api.get(`/v1/builds/${builtAgainst.id}/artifacts/linux-amd64/compatibility?host=hello-host`)).body;
    expect(amd64.loadsInto).toEqual(['hello-host@1.0.0']);
    expect(amd64.refusedBy).toEqual([{ release: 'hello-host@2.0.0', differing: expect.arrayContaining(['runtime']) }]);
    expect(amd64.notCompared).toEqual([{ release: 'hello-host@0.9.0', reason: expect.stringContaining('go.mod') }]);
    // The executables agree: 1.0.0 loads the artifact (the test above), 2.0.0 refuses it.
    const artifact = await api.bytes(`/v1/builds/${builtAgainst.id}/artifacts/linux-amd64`);
    expect(await runHostOn(docker, `plugforge/build:${go}-linux-amd64`, work, trimmedHost, artifact.bytes)).toMatch(
      /plugin was built with a different version of package/,
    );
    const arm64 = (await api.get(`/v1/builds/${builtAgainst.id}/artifacts/linux-arm64/compatibility?host=hello-host`)).body;
    expect(arm64.loadsInto).toEqual([]);
    expect(arm64.notCompared.map((n: { reason: string }) => n.reason)).toEqual([
      expect.stringContaining('go.mod'),
      'no linux-arm64 executable registered',
      'no linux-arm64 executable registered',
    ]);
    expect((await api.get(`/v1/builds/${builtAgainst.id}/artifacts/linux-amd64/compatibility`)).status).toBe(400);
    for (const v of ['2.0.0', '0.9.0']) expect((await api.request('DELETE', `/v1/hosts/hello-host/${v}`)).status).toBe(204);
  });

  it('is gone once removed: a build naming it is refused 404 with how to register it', async () => {
    expect((await api.request('DELETE', '/v1/hosts/hello-host/1.0.0')).status).toBe(204);
    const res = await post('/v1/builds', await buildForm({ targets: 'linux-amd64', hosts: 'hello-host@1.0.0' }));
    expect([res.status, res.body.error.code]).toEqual([404, 'host_release_unknown']);
    expect(res.body.error.message).toContain('plugforge hosts add --name hello-host --version 1.0.0');
  });
});
