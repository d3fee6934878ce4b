import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { GOTIFY_PLUGIN } from './support/fixtures.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { eventually } from './support/eventually.js';

/**
 * A worker that shares no disk with the API (docs/deployment.md): an empty data directory
 * of its own, PLUGFORGE_API_URL and a worker credential. It reaches the API through a
 * proxy that cuts the first source download and the first artifact upload part-way: the
 * worker notices (sha256, length), tries again, and the build is delivered; the API keeps
 * nothing half-received. Tenants' tokens and the worker's credential open only their own routes.
 */
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const WORKER_TOKEN = randomBytes(24).toString('hex');
const TENANT_TOKEN = randomBytes(24).toString('hex');
let redis: Redis;
let api: RunningService;
let worker: RunningService;
let proxy: CuttingProxy;
let workerDir: string;
let apiDir: string;
let client: ApiClient;
const asTenant = { Authorization: `Bearer ${TENANT_TOKEN}` };
const asWorker = { Authorization: `Bearer ${WORKER_TOKEN}` };

beforeAll(async () => {
  redis = await requireRedis();
  await requireImages(await requireDocker());
  const apiConfig = await testConfig({ PLUGFORGE_WORKER_TOKENS: sha256(WORKER_TOKEN), PLUGFORGE_TOKENS: `acme:${sha256(TENANT_TOKEN)}` });
  apiDir = apiConfig.dataDir;
  api = await startService('api', apiConfig);
  client = new ApiClient(`http://127.0.0.1:${api.port}`);
  proxy = await cuttingProxy(api.port!);
  workerDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-remote-worker-'));
  const workerConfig = await testConfig({
    PLUGFORGE_QUEUE: apiConfig.queueName,
    PLUGFORGE_DATA_DIR: workerDir,
    PLUGFORGE_API_URL: `http://127.0.0.1:${proxy.port}`,
    PLUGFORGE_WORKER_TOKEN: WORKER_TOKEN,
  });
  worker = await startService('worker', workerConfig);
});

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  proxy?.server.close();
  redis?.disconnect();
});

/** Files under `dir`, recursively (relative paths). */
async function filesUnder(dir: string): Promise<string[]> {
  return ((await readdir(dir, { recursive: true, withFileTypes: true })) as { isFile(): boolean; parentPath: string; name: string }[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('a worker without the data directory', () => {
  it('builds and delivers a build the API accepted, through transfers cut part-way, keeping nothing of its own', async () => {
    const res = await client.request(
      'POST',
      '/v1/builds?targets=linux-amd64,linux-arm64&host=gotify',
      await tarOf(GOTIFY_PLUGIN, { gzip: true }),
      { ...asTenant, 'Content-Type': 'application/gzip' },
    );
    expect(res.status, res.text).toBe(202);
    let doc: any;
    await eventually(
      async () => {
        doc = (await client.request('GET', `/v1/builds/${res.body.id}`, undefined, asTenant)).body;
        return ['succeeded', 'failed', 'canceled'].includes(doc.status);
      },
      { timeoutMs: 180_000, intervalMs: 250, message: () => `build ${res.body.id} ending: ${JSON.stringify(doc)}` },
    );
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    // The cuts happened: a source download and an artifact upload were broken off part-way.
    expect(proxy.cut).toEqual({ GET: 1, PUT: 1 });
    for (const t of ['linux-amd64', 'linux-arm64']) {
      const got = await fetch(`${client.base}/v1/builds/${res.body.id}/artifacts/${t}`, { headers: asTenant });
      expect(got.status).toBe(200);
      expect(sha256(Buffer.from(await got.arrayBuffer()))).toBe(doc.targets[t].artifact.sha256);
      expect(doc.targets[t].verify.status).toBe('passed');
    }
    // Nothing of the build on the worker's disk; no half-received upload left on the API's.
    expect((await filesUnder(workerDir)).filter((f) => !f.startsWith('blobs/tmp'))).toEqual([]);
    expect(await filesUnder(path.join(apiDir, 'blobs', 'tmp'))).toEqual([]);
  });

  it("opens the worker routes to the worker's credential only, and nothing else to it", async () => {
    const blob = `/v1/worker/blobs/${'0'.repeat(64)}`;
    expect((await client.get(blob)).body.error.code).toBe('worker_unauthorized');
    expect((await client.request('GET', blob, undefined, asTenant)).status).toBe(401);
    expect((await client.request('GET', blob, undefined, asWorker)).body.error).toMatchObject({ code: 'blob_not_found' });
    expect((await client.request('GET', '/v1/builds', undefined, asWorker)).status).toBe(401);
    expect((await client.request('GET', '/v1/worker/blobs/not-a-sha', undefined, asWorker)).body.error.code).toBe('bad_blob_id');
    // A body that is not the sha256 it is put under is refused and not kept.
    const body = Buffer.from('plugforge');
    const wrong = await client.request('PUT', blob, body, { ...asWorker, 'Content-Type': 'application/octet-stream' });
    expect(wrong.status).toBe(422);
    expect(wrong.body.error.code).toBe('blob_sha256_mismatch');
    expect((await client.request('GET', `/v1/worker/blobs/${sha256(body)}`, undefined, asWorker)).status).toBe(404);
    const right = await client.request('PUT', `/v1/worker/blobs/${sha256(body)}`, body, {
      ...asWorker,
      'Content-Type': 'application/octet-stream',
    });
    expect(right.status).toBe(201);
    expect((await client.request('GET', `/v1/worker/blobs/${sha256(body)}`, undefined, asWorker)).text).toBe('plugforge');
  });
});

interface CuttingProxy {
  server: net.Server;
  port: number;
  cut: { GET: number; PUT: number };
}

/**
 * A TCP proxy to the API that breaks off the first blob download (400 bytes into its
 * answer) and the first blob upload (after 64 KiB of its body), mid-stream, as a peer that
 * dies would; everything else passes.
 */
async function cuttingProxy(target: number): Promise<CuttingProxy> {
  const cut = { GET: 0, PUT: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    let kind: 'GET' | 'PUT' | undefined;
    let up = 0;
    let down = 0;
    const breakOff = (k: 'GET' | 'PUT') => {
      cut[k]++;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      // A new request on the connection (keep-alive): which kind, counted afresh.
      const request = /^([A-Z]+) (\S+) HTTP\/1\.1\r\n/.exec(chunk.toString('latin1'));
      if (request) {
        kind = request[2]!.startsWith('/v1/worker/blobs/') ? (request[1] as typeof kind) : undefined;
        up = 0;
        down = 0;
      }
      up += chunk.length;
      if (kind === 'PUT' && cut.PUT === 0 && up > 64 * 1024) return breakOff('PUT');
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length;
      // Past the answer's head, a few bytes into the body (a source is a small archive).
      if (kind === 'GET' && cut.GET === 0 && down > 400) return breakOff('GET');
      client.write(chunk);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port, cut };
}
