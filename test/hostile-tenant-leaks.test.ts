import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/free-port.js';
import { requireDocker, requireImages } from './support/env.js';
import { startServe, type ServeProcess } from './support/serve-process.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

/**
 * What a tenant can learn or forge through `plugforge serve` (a process of its own): the
 * module proxy's password never reaches a build log, a document, /readyz or the process's
 * own output; a request's Host header never reaches what the installation signs; API
 * answers are never sniffed as another type.
 */
const PASSWORD = 'pr0xy-s3cret-pw';

let serve: ServeProcess;

beforeAll(async () => {
  await requireImages(await requireDocker());
  // Nothing listens there: the dependency phase fails at once, and its failure is what a tenant reads.
  const deadPort = await freePort();
  serve = await startServe({
    PLUGFORGE_GOPROXY: `http://plugforge:${PASSWORD}@127.0.0.1:${deadPort}/`,
    PLUGFORGE_ATTEMPTS: '1',
    PLUGFORGE_LOG_LEVEL: 'info',
  });
}, 120_000);

afterAll(async () => {
  await serve?.stop();
});

/** A GET with headers fetch() will not send (Host), as raw bytes. */
function rawGet(
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: serve.port, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
  });
}

describe('a proxy URL with a password (PLUGFORGE_GOPROXY=http://user:password@…)', () => {
  it('appears in no build log, build document, error, /readyz or process output', async () => {
    const goMod = 'module example.com/needs-deps\n\ngo 1.22\n\nrequire example.com/absent v1.0.0\n';
    const goSum =
      'example.com/absent v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nexample.com/absent v1.0.0/go.mod h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n';
    const source = await tarOf(
      { 'go.mod': goMod, 'go.sum': goSum, 'plugin.go': 'package main\n\nimport _ "example.com/absent"\n\nfunc main() {}\n' },
      { gzip: true },
    );
    const accepted = await serve.api.submit(source, 'targets=linux-amd64');
    expect(accepted.status).toBe(202);
    const doc = await serve.api.waitFor(accepted.body.id);
    expect(doc.status).toBe('failed');
    expect(doc.dependencies.status).toBe('failed');
    const log = await serve.api.get(`/v1/builds/${doc.id}/logs`);
    // The phase ran and said where it downloads from, without the password.
    expect(log.text).toContain('downloading modules');
    const readyz = await serve.api.get('/readyz');
    const everything = [
      JSON.stringify(doc),
      log.text,
      (await serve.api.get(`/v1/builds/${doc.id}`)).text,
      (await serve.api.get('/v1/builds?limit=20')).text,
      readyz.text,
      serve.output(),
    ].join('\n');
    expect(everything).not.toContain(PASSWORD);
  }, 240_000);
});

describe('the Host header', () => {
  let id = '';
  beforeAll(async () => {
    const accepted = await serve.api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64');
    expect(accepted.status).toBe(202);
    id = accepted.body.id;
    expect((await serve.api.waitFor(id)).status).toBe('succeeded');
  }, 240_000);

  it('does not name the builder of the signed provenance: evil.example appears nowhere in it', async () => {
    const evil = await rawGet(`/v1/builds/${id}/provenance`, { Host: 'evil.example' });
    expect(evil.status).toBe(200);
    const statement = JSON.parse(Buffer.from(JSON.parse(evil.text).payload, 'base64').toString('utf8'));
    expect(evil.text).not.toContain('evil.example');
    expect(JSON.stringify(statement)).not.toContain('evil.example');
    // No PLUGFORGE_PUBLIC_URL here: the id derived from the signing key (GET /v1/keys).
    const keys = (await serve.api.get('/v1/keys')).body.keys;
    expect(statement.predicate.runDetails.builder.id).toBe(`urn:plugforge:builder:${keys[0].keyid}`);
    // The plugin's build info was read (without the whole artifact in memory): the Go release that linked it.
    expect(
      statement.predicate.buildDefinition.resolvedDependencies.find((d: { name?: string }) => d.name === 'builder/linux-amd64').annotations
        .go,
    ).toMatch(/^1\.22\./);
    expect((await serve.api.get(`/v1/builds/${id}/artifacts/linux-amd64/sbom`)).status).toBe(200);
  });

  it('does not make the evidence again: the provenance under many Host headers is one document, byte for byte', async () => {
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => rawGet(`/v1/builds/${id}/provenance`, { Host: `h${i}.example` })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
  });
});

describe('every API answer', () => {
  it('says X-Content-Type-Options: nosniff, plain-text logs and errors included', async () => {
    const some = (await serve.api.get('/v1/builds?limit=1')).body.builds[0].id;
    for (const path of ['/healthz', '/readyz', `/v1/builds/${some}/logs`, '/v1/no-such-route', '/metrics']) {
      const res = await serve.api.get(path);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
  });
});
