import { mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiDeps } from '../src/api/api-deps.js';
import { errorHandler } from '../src/api/http-errors.js';
import { systemRoutes } from '../src/api/system-routes.js';
import { workerRoutes } from '../src/api/worker-routes.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { FsBlobStore } from '../src/store/fs-blob-store.js';
import { S3BlobStore } from '../src/store/s3-blob-store.js';
import { createHash, randomBytes } from 'node:crypto';
import { redactUrls } from '../src/redact-url.js';

/**
 * What the API's answers must not carry (configuration secrets, addresses, engine errors),
 * and a worker PUT that must not remove a blob it did not write: the routes on stub
 * dependencies, without Redis or Docker.
 */
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const WORKER_TOKEN = randomBytes(24).toString('hex');
const logged: string[] = [];
const log = createLogger('info', 'test', { write: (line: string) => void logged.push(line) });

async function serveApp(app: express.Express): Promise<{ url: string; close: () => void }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

describe('redactUrls', () => {
  it('hides the user info of a URL, and of every URL in a text, keeping the rest', () => {
    expect(redactUrls('https://user:pa%40ss@proxy.example:8443/go?x=1')).toBe('https://***@proxy.example:8443/go?x=1');
    expect(redactUrls('redis://:secret@127.0.0.1:6379/2')).toBe('redis://***@127.0.0.1:6379/2');
    expect(redactUrls('https://proxy.golang.org')).toBe('https://proxy.golang.org');
    expect(redactUrls('off')).toBe('off');
    expect(redactUrls('Get "http://u:p@h/x": dial tcp; and rediss://a:b@c:1 too')).toBe(
      'Get "http://***@h/x": dial tcp; and rediss://***@c:1 too',
    );
  });
});

describe('/readyz (open to anyone)', () => {
  let app: { url: string; close: () => void };
  let dockerDown: { url: string; close: () => void };
  const readyz = async (redis: object, workers: object[]) => {
    const a = express();
    a.use(systemRoutes({ config: loadConfig({}), redis, registry: { live: async () => workers }, log } as unknown as ApiDeps));
    return serveApp(a);
  };
  beforeAll(async () => {
    app = await readyz(
      { ping: async () => Promise.reject(new Error('connect ECONNREFUSED 10.9.8.7:6379 (redis://:hunter2@10.9.8.7)')) },
      [],
    );
    const worker = {
      id: 'w1',
      dockerReachable: false,
      dockerError: 'connect EACCES /run/user/1000/docker.sock',
      images: [],
      imageRepo: 'plugforge/build',
    };
    dockerDown = await readyz({ ping: async () => 'PONG' }, [worker]);
  });
  afterAll(() => {
    app?.close();
    dockerDown?.close();
  });

  it("answers the engine's state only: no Docker error text", async () => {
    const res = await fetch(`${dockerDown.url}/readyz`);
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(JSON.parse(text).docker).toBe('unreachable from every worker');
    expect(text).not.toMatch(/EACCES|docker\.sock/);
  });

  it('answers states only: no Redis error text, which stays in the process log', async () => {
    const res = await fetch(`${app.url}/readyz`);
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(JSON.parse(text).redis).toBe('unreachable');
    expect(text).not.toMatch(/10\.9\.8\.7|ECONNREFUSED|hunter2/);
    expect(logged.join('')).toContain('ECONNREFUSED');
    expect(logged.join('')).not.toContain('hunter2');
  });
});

describe('S3BlobStore errors a client can read', () => {
  const failing = (status?: number) => ({
    send: async () =>
      Promise.reject(
        Object.assign(new Error('boom at http://10.1.2.3:7480/secret-bucket'), status ? { $metadata: { httpStatusCode: status } } : {}),
      ),
  });
  const store = (status?: number) =>
    new S3BlobStore({
      client: failing(status) as never,
      bucket: 'secret-bucket',
      prefix: 'p/',
      tempDir: os.tmpdir(),
      endpointName: 'http://10.1.2.3:7480',
    });

  it('name neither the bucket nor the endpoint (503 unreachable, missing blob)', async () => {
    for (const s of [store(), store(503), store(404)]) {
      const err = await s.open('a'.repeat(64)).then(
        () => undefined,
        (e: unknown) => e as Error & { status: number },
      );
      expect(err).toBeDefined();
      expect(err!.message).not.toMatch(/secret-bucket|10\.1\.2\.3/);
    }
  });
});

describe('a worker PUT whose body is not the sha256 it names', () => {
  let app: { url: string; close: () => void };
  let store: FsBlobStore;
  beforeAll(async () => {
    store = new FsBlobStore(await mkdtemp(path.join(os.tmpdir(), 'plugforge-put-')));
    await store.init();
    const config = loadConfig({ PLUGFORGE_WORKER_TOKENS: sha256(WORKER_TOKEN) });
    const a = express();
    a.use(workerRoutes({ config, store, log } as unknown as ApiDeps));
    a.use(errorHandler(log));
    app = await serveApp(a);
  });
  afterAll(() => app?.close());

  it("is refused (422) and removes nothing: a good blob with the body's own sha256 stays", async () => {
    const good = Buffer.from("a tenant's artifact");
    const kept = await store.put(Readable.from([good]));
    const res = await fetch(`${app.url}/v1/worker/blobs/${'b'.repeat(64)}`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${WORKER_TOKEN}`, 'Content-Type': 'application/octet-stream' },
      body: good,
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('blob_sha256_mismatch');
    expect(await store.has(kept.sha256)).toBe(true);
    expect(await store.has('b'.repeat(64))).toBe(false);
  });
});
