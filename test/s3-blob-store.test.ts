import { createHash, randomBytes } from 'node:crypto';
import { access, mkdtemp, readdir, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildRepository } from '../src/builds/build-repository.js';
import { RetentionSweeper } from '../src/builds/retention-sweeper.js';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { createS3Client, openBlobStore, type OpenedBlobStore } from '../src/store/open-blob-store.js';
import { S3BlobStore } from '../src/store/s3-blob-store.js';
import { blobStoreContract } from './support/blob-store-contract.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { GOTIFY_PLUGIN, sampleRecord } from './support/fixtures.js';
import { ApiClient } from './support/http.js';
import { startS3Server, type S3Server } from './support/s3-server.js';
import { tarOf } from './support/source.js';
import { freePort } from './support/free-port.js';

/**
 * The S3 blob store (src/store/s3-blob-store.ts) on a real S3 server: Ceph's radosgw in a
 * container (test/support/s3-server.ts), a bucket per test. The BlobStore contract, the
 * retention sweep on it, and a plugforge service building and serving from it.
 */
const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;

let docker: Docker;
let server: S3Server;

beforeAll(async () => {
  docker = await requireDocker();
  server = await startS3Server(docker);
});

afterAll(async () => {
  await server?.stop();
});

/** A store on a new bucket (keys under blobs/), with a temp directory of its own. */
async function openS3Store(): Promise<{ store: OpenedBlobStore; bucket: string; tempDir: string }> {
  const bucket = await server.createBucket();
  const tempDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-s3-temp-'));
  const config = loadConfig({ ...server.env(bucket, 'blobs'), PLUGFORGE_S3_TEMP_DIR: tempDir });
  return { store: await openBlobStore(config), bucket, tempDir };
}

blobStoreContract('S3BlobStore on Ceph radosgw', async () => {
  const { store, bucket, tempDir } = await openS3Store();
  return {
    store,
    everything: async () => {
      const { keys, uploads } = await server.leftovers(bucket);
      return [...keys, ...uploads.map((u) => `unfinished upload of ${u}`), ...(await readdir(tempDir)).map((f) => path.join(tempDir, f))];
    },
  };
});

describe('S3BlobStore on Ceph radosgw', () => {
  it('keeps each blob at <prefix>sha256/<first two hex digits>/<sha256>, and nothing else in the bucket', async () => {
    const { store, bucket } = await openS3Store();
    const a = await store.put(Readable.from([Buffer.from('one')]));
    const b = await store.put(Readable.from([Buffer.from('two')]));
    const { keys, uploads } = await server.leftovers(bucket);
    expect(keys.sort()).toEqual([a, b].map((x) => `blobs/sha256/${x.sha256.slice(0, 2)}/${x.sha256}`).sort());
    expect(uploads).toEqual([]);
  });

  it('fails the read of a blob whose object no longer holds its bytes', async () => {
    const { store, bucket } = await openS3Store();
    const blob = await store.put(Readable.from([Buffer.from('the real bytes')]));
    await server.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `blobs/sha256/${blob.sha256.slice(0, 2)}/${blob.sha256}`,
        Body: 'other bytes, same length',
      }),
    );
    const opened = await store.open(blob.sha256);
    // Named without bucket or endpoint: the message can reach a client or a build document.
    await expect(text(opened.stream)).rejects.toMatchObject({
      code: 'blob_corrupt',
      message: expect.stringContaining(`stored blob ${blob.sha256} read from the blob store`),
    });
  });

  it('keeps no temp file of a put whose PUT fails, and leaves an adopt that fails its temp file for the sweep; a server that does not answer is a retryable 503 blob_store_unreachable', async () => {
    const tempDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-s3-temp-'));
    // A server that went away: nothing listens at the endpoint any more.
    const config = loadConfig({ ...server.env('pf-gone'), PLUGFORGE_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` }).blobStore;
    if (config.kind !== 's3') throw new Error('an s3:// configuration was expected');
    const store = new S3BlobStore({ client: createS3Client(config), bucket: 'pf-gone', prefix: '', tempDir, endpointName: 'nowhere' });
    const unreachable = {
      code: 'blob_store_unreachable',
      status: 503,
      retryable: true,
      message: 'The store of sources and artifacts does not answer; try again shortly.',
    };
    await expect(store.put(Readable.from([Buffer.from('never sent')]))).rejects.toMatchObject(unreachable);
    expect(await readdir(tempDir)).toEqual([]);
    const temp = store.tempPath('source');
    await writeFile(temp, 'an accepted upload');
    const sha256 = createHash('sha256').update('an accepted upload').digest('hex');
    await expect(store.adopt(temp, { sha256, size: 18 })).rejects.toMatchObject(unreachable);
    expect(await readdir(tempDir)).toEqual([path.basename(temp)]);
    await expect(store.has(sha256)).rejects.toMatchObject(unreachable);
    await expect(store.open(sha256)).rejects.toMatchObject(unreachable);
    await expect(store.remove(sha256, Date.now())).rejects.toMatchObject(unreachable);
    await expect(store.list().next()).rejects.toMatchObject(unreachable);
  });

  it('refuses to open a bucket that is not there, naming it and the endpoint', async () => {
    const config = loadConfig({
      ...server.env('pf-no-such-bucket'),
      PLUGFORGE_S3_TEMP_DIR: await mkdtemp(path.join(os.tmpdir(), 'plugforge-s3-temp-')),
    });
    await expect(openBlobStore(config)).rejects.toMatchObject({
      code: 'blob_store_unreachable',
      message: expect.stringMatching(new RegExp(`bucket "pf-no-such-bucket" at ${server.endpoint} cannot be used \\(no such bucket\\)`)),
    });
  });

  it('refuses wrong credentials, and an endpoint where nothing answers', async () => {
    const bucket = await server.createBucket();
    const wrong = loadConfig({ ...server.env(bucket), AWS_SECRET_ACCESS_KEY: 'not-the-secret' });
    await expect(openBlobStore(wrong)).rejects.toMatchObject({
      code: 'blob_store_unreachable',
      message: expect.stringContaining('access denied'),
    });
    // A port that was free a moment ago: nothing listens there.
    const closed = loadConfig({ ...server.env(bucket), PLUGFORGE_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` });
    await expect(openBlobStore(closed)).rejects.toMatchObject({
      code: 'blob_store_unreachable',
      message: expect.stringContaining(`bucket "${bucket}" at http://127.0.0.1:`),
    });
  });
});

describe('retention sweep on an S3 store (real Redis, Ceph radosgw)', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = await requireRedis();
  });
  afterAll(() => redis?.disconnect());

  it('removes the blobs no build refers to from the bucket, keeps the referenced ones, and discards stale temp files', async () => {
    const { store, tempDir } = await openS3Store();
    const repo = new BuildRepository(redis, `pf-test-s3-retention-${randomBytes(4).toString('hex')}`);
    const sweeper = new RetentionSweeper(redis, repo, store, { maxAgeMs: 30 * DAY, graceMs: HOUR }, createLogger('silent'));
    const put = (text: string) => store.put(Readable.from([Buffer.from(text)]));
    const source = await put('source shared by an old and a recent build');
    const oldArtifact = await put('artifact of the old build');
    const recentArtifact = await put('artifact of the recent build');
    const orphan = await put('artifact of a target canceled while its probe ran');
    await recordBuild(repo, 'old', source.sha256, 40 * DAY, { ago: 40 * DAY, artifact: oldArtifact });
    await recordBuild(repo, 'recent', source.sha256, 2 * DAY, { ago: DAY, artifact: recentArtifact });
    const stale = path.join(tempDir, 'source-abandoned');
    await writeFile(stale, 'an upload whose process died');
    await utimes(stale, new Date(Date.now() - 3 * HOUR), new Date(Date.now() - 3 * HOUR));

    // Two hours on: every blob just stored is past the hour of grace (S3 sets Last-Modified itself).
    const report = await sweeper.sweep(Date.now() + 2 * HOUR);

    expect(report).toEqual({ builds: 1, blobs: 2, temps: 1, bytes: oldArtifact.size + orphan.size });
    expect(await store.has(oldArtifact.sha256)).toBe(false);
    expect(await store.has(orphan.sha256)).toBe(false);
    expect(await store.has(source.sha256)).toBe(true);
    expect(await store.has(recentArtifact.sha256)).toBe(true);
    await expect(access(stale)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await sweeper.sweep(Date.now() + 2 * HOUR)).toEqual({ builds: 0, blobs: 0, temps: 0, bytes: 0 });
  });
});

describe('a plugforge service storing its blobs on S3 (Ceph radosgw, real Docker and Redis)', () => {
  let service: RunningService | undefined;
  let redis: Redis;
  afterAll(async () => {
    await service?.stop();
    redis?.disconnect();
  });

  it('accepts an upload, builds linux-amd64, and serves the artifact from the bucket', async () => {
    redis = await requireRedis();
    await requireImages(docker);
    const bucket = await server.createBucket();
    const tempDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-s3-temp-'));
    const config = await testConfig({ ...server.env(bucket, 'plugforge'), PLUGFORGE_S3_TEMP_DIR: tempDir });
    service = await startService('serve', config);
    const api = new ApiClient(`http://127.0.0.1:${service.port}`);

    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'go=1.22&host=gotify&targets=linux-amd64');
    expect(res.status, res.text).toBe(202);
    const doc = await api.waitFor(res.body.id);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    const artifact = doc.targets['linux-amd64'].artifact;

    const download = await api.bytes(`/v1/builds/${doc.id}/artifacts/linux-amd64`);
    expect(download.status).toBe(200);
    expect(createHash('sha256').update(download.bytes).digest('hex')).toBe(artifact.sha256);
    expect(download.bytes.length).toBe(artifact.size);

    // The source and the artifact are in the bucket, and nothing went to the data directory.
    const { keys } = await server.leftovers(bucket);
    for (const sha of [doc.source.sha256, artifact.sha256]) expect(keys).toContain(`plugforge/sha256/${sha.slice(0, 2)}/${sha}`);
    await expect(access(path.join(config.dataDir, 'blobs'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(tempDir)).toEqual([]);
  });

  it('tells a client whose upload finds the object store gone that the store does not answer (503 blob_store_unreachable), not Redis', async () => {
    await requireRedis().then((r) => r.disconnect());
    const other = await startS3Server(docker);
    let api: RunningService | undefined;
    try {
      const bucket = await other.createBucket();
      api = await startService(
        'api',
        await testConfig({ ...other.env(bucket), PLUGFORGE_S3_TEMP_DIR: await mkdtemp(path.join(os.tmpdir(), 'plugforge-s3-temp-')) }),
      );
      await other.stop();
      const res = await new ApiClient(`http://127.0.0.1:${api.port}`).submit(
        await tarOf(GOTIFY_PLUGIN, { gzip: true }),
        'go=1.22&targets=linux-amd64',
      );
      expect(res.status, res.text).toBe(503);
      expect(res.body.error).toMatchObject({
        code: 'blob_store_unreachable',
        message: 'The store of sources and artifacts does not answer; try again shortly.',
      });
    } finally {
      await api?.stop();
      await other.stop();
    }
  });
});

/** A build of linux-amd64 created `createdAgo` ago, finished `finished.ago` ago with its artifact. */
async function recordBuild(
  repo: BuildRepository,
  id: string,
  sourceSha256: string,
  createdAgo: number,
  finished: { ago: number; artifact: { sha256: string; size: number } },
): Promise<void> {
  const record = sampleRecord({
    id,
    tenant: 'acme',
    name: id,
    createdAt: new Date(Date.now() - createdAgo).toISOString(),
    targetIds: ['linux-amd64'],
    source: { sha256: sourceSha256, size: 10, module: `example.com/${id}`, vendored: false, requirements: false },
  });
  await repo.create(record, () => 'plugforge/build:1.22.12-linux-amd64');
  await repo.patchTarget(id, 'linux-amd64', {
    status: 'succeeded',
    startedAt: record.createdAt,
    finishedAt: new Date(Date.now() - finished.ago).toISOString(),
    artifact: { name: `${id}-linux-amd64.so`, size: finished.artifact.size, sha256: finished.artifact.sha256 },
  });
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}
