import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireDocker, requireImages, requireRedis, REPO_ROOT, testConfig } from './support/env.js';
import { GOTIFY_PLUGIN } from './support/fixtures.js';
import { ApiClient, type ApiResponse } from './support/http.js';
import { tarOf } from './support/source.js';

/**
 * GET /v1/openapi.json against a standard validator, against the routes of src/api, and
 * against real responses of a real build: the description cannot drift from the code.
 */
let redis: Redis;
let service: RunningService;
let api: ApiClient;
let doc: any;
let ajv: Ajv2020;

beforeAll(async () => {
  redis = await requireRedis();
  await requireImages(await requireDocker());
  service = await startService('serve', await testConfig());
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
  doc = (await api.get('/v1/openapi.json')).body;
  ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addSchema({ $id: 'https://plugforge.invalid/openapi.json', components: doc.components });
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

/** The errors of `body` against the response schema the document gives for this route and status ([] when it matches). */
function mismatches(method: string, route: string, res: Pick<ApiResponse, 'status' | 'body'>): string[] {
  const responses = doc.paths[route]?.[method]?.responses ?? {};
  const described = responses[String(res.status)] ?? responses[`${String(res.status)[0]}XX`];
  if (!described) return [`${method.toUpperCase()} ${route} has no response ${res.status} in the document`];
  const schema = described.content?.['application/json']?.schema;
  if (!schema) return [`${method.toUpperCase()} ${route} ${res.status} is not described as JSON`];
  const validate = ajv.compile({ $ref: `https://plugforge.invalid/openapi.json${schema.$ref}` });
  return validate(res.body) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
}

/** Every route the code of src/api declares, as OpenAPI paths and methods (a folder served with `use` as GET of its files). */
function routesInCode(): string[] {
  const dir = path.join(REPO_ROOT, 'src', 'api');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => [
      ...readFileSync(path.join(dir, f), 'utf8').matchAll(/\b(?:router|app)\.(get|post|put|patch|delete|use)\(\s*'([^']+)'/g),
    ])
    .map((m) => (m[1] === 'use' ? `get ${m[2]}/{file}` : `${m[1]} ${m[2]!.replace(/:(\w+)/g, '{$1}')}`));
}

describe('GET /v1/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
  });

  it('has every route of src/api, and no route the code does not have', () => {
    const inCode = routesInCode();
    // The scan must see the routes it judges.
    expect(inCode).toEqual(expect.arrayContaining(['post /v1/builds', 'get /v1/builds/{id}/artifacts/{target}', 'get /v1/openapi.json']));
    const documented = Object.entries<any>(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops)
        .filter((k) => k !== 'parameters')
        .map((m) => `${m} ${p}`),
    );
    expect(documented.sort()).toEqual([...new Set(inCode)].sort());
  });

  it("describes the build options, the list's query and the artifact's headers from the code's own schemas", () => {
    const names = (op: any) => op.parameters.map((p: any) => p.name).sort();
    expect(names(doc.paths['/v1/builds'].post)).toEqual([
      'Idempotency-Key',
      'callback',
      'cgo',
      'go',
      'host',
      'hostGoMod',
      'hosts',
      'mode',
      'name',
      'package',
      'reuse',
      'strip',
      'tags',
      'targets',
      'trimpath',
      'verify',
    ]);
    expect(names(doc.paths['/v1/builds'].get)).toEqual(['cursor', 'limit', 'module', 'since', 'status']);
    expect(Object.keys(doc.paths['/v1/builds/{id}/artifacts/{target}'].get.responses['200'].headers)).toEqual([
      'X-Plugforge-Sha256',
      'X-Plugforge-Verify',
      'ETag',
    ]);
  });

  it('holds real responses of a real build to the document, and fails one with a field renamed', async () => {
    const source = await tarOf(GOTIFY_PLUGIN, { gzip: true });
    const accepted = await api.submit(source, 'targets=linux-amd64,linux-arm64&host=gotify');
    expect(mismatches('post', '/v1/builds', accepted)).toEqual([]);
    const id = accepted.body.id as string;
    const running = await api.get(`/v1/builds/${id}`);
    expect(mismatches('get', '/v1/builds/{id}', running)).toEqual([]);
    const done = await api.waitFor(id);
    expect(done.status).toBe('succeeded');
    const finished = await api.get(`/v1/builds/${id}`);
    expect(mismatches('get', '/v1/builds/{id}', finished)).toEqual([]);
    expect(finished.body.targets['linux-arm64'].phases.compile).toBeGreaterThan(0);

    const checks: [string, string, ApiResponse][] = [
      ['get', '/v1/builds', await api.get('/v1/builds?limit=50')],
      ['get', '/v1/builds', await api.get('/v1/builds?limit=0')],
      ['get', '/v1/builds/{id}', await api.get('/v1/builds/nosuchbuild')],
      ['delete', '/v1/builds/{id}', await api.request('DELETE', `/v1/builds/${id}`)],
      ['get', '/v1/toolchains', await api.get('/v1/toolchains')],
      ['get', '/healthz', await api.get('/healthz')],
      ['get', '/readyz', await api.get('/readyz')],
      ['post', '/v1/builds', await api.submit(source, 'strip=maybe')],
    ];
    expect(checks.map(([, , r]) => r.status)).toEqual([200, 400, 404, 409, 200, 200, 200, 400]);
    for (const [method, route, res] of checks) expect(mismatches(method, route, res), `${method} ${route} ${res.status}`).toEqual([]);
    // Tenant "public"'s list is shared by every test server on this Redis: this build is among its newest.
    expect(checks[0]![2].body.builds.map((b: { id: string }) => b.id)).toContain(id);

    const artifact = await api.bytes(`/v1/builds/${id}/artifacts/linux-arm64`);
    expect(artifact.headers.get('x-plugforge-sha256')).toBe(createHash('sha256').update(artifact.bytes).digest('hex'));
    expect(artifact.headers.get('x-plugforge-verify')).toBe('passed');
    expect((await api.get(`/v1/builds/${id}/logs?target=linux-arm64`)).headers.get('content-type')).toMatch(/^text\/plain/);

    // Host releases (docs/hosts.md): registered from a go.mod, listed, read, a refusal, removed.
    const form = new FormData();
    for (const [k, v] of Object.entries({ name: 'openapi-host', version: 'v1.0.0', go: '1.22.12' })) form.set(k, v);
    form.set('hostGoMod', new Blob(['module example.com/host\n\ngo 1.22\n']), 'go.mod');
    const posted = await fetch(`${api.base}/v1/hosts`, { method: 'POST', body: form });
    const hostChecks: [string, string, ApiResponse][] = [
      ['post', '/v1/hosts', { status: posted.status, headers: posted.headers, body: await posted.json(), text: '' }],
      ['get', '/v1/hosts', await api.get('/v1/hosts?name=openapi-host')],
      ['get', '/v1/hosts/{name}/{version}', await api.get('/v1/hosts/openapi-host/1.0.0')],
      ['get', '/v1/hosts/{name}/{version}', await api.get('/v1/hosts/openapi-host/2.0.0')],
      ['delete', '/v1/hosts/{name}/{version}', await api.request('DELETE', '/v1/hosts/openapi-host/1.0.0')],
    ];
    expect(hostChecks.map(([, , r]) => r.status)).toEqual([201, 200, 200, 404, 204]);
    for (const [method, route, res] of hostChecks.slice(0, 4))
      expect(mismatches(method, route, res), `${method} ${route} ${res.status}`).toEqual([]);
    expect(hostChecks[1]![2].body.hosts).toHaveLength(1);

    // A field renamed in the response only (or in the schema only) no longer matches.
    const renamed = structuredClone(finished.body);
    const a = renamed.targets['linux-amd64'].artifact;
    a.sha = a.sha256;
    delete a.sha256;
    expect(mismatches('get', '/v1/builds/{id}', { status: 200, body: renamed }).join('\n')).toMatch(
      /must have required property 'sha256'[\s\S]*must NOT have additional properties/,
    );
    const { createdAt, ...summary } = checks[0]![2].body.builds[0];
    expect(mismatches('get', '/v1/builds', { status: 200, body: { builds: [{ ...summary, created: createdAt }] } })).not.toEqual([]);
  });
});
