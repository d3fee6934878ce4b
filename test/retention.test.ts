import { randomBytes } from 'node:crypto';
import { mkdtemp, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { BuildRepository } from '../src/builds/build-repository.js';
import { HostReleases, storeHostFingerprints } from '../src/builds/host-releases.js';
import { RetentionSweeper } from '../src/builds/retention-sweeper.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { FsBlobStore } from '../src/store/fs-blob-store.js';
import { requireRedis } from './support/env.js';

/**
 * Retention on real Redis and a real filesystem store: finished builds past the retention
 * period go with their logs and the blobs no other build refers to; everything younger,
 * unfinished or shared stays. Each test has its own key prefix and store.
 */
const DAY = 24 * 3600 * 1000;
const HOUR = 3600 * 1000;
const RETENTION = { maxAgeMs: 30 * DAY, graceMs: HOUR };

let redis: Redis;
let repo: BuildRepository;
let store: FsBlobStore;
let storeDir: string;
let sweeper: RetentionSweeper;

beforeAll(async () => {
  redis = await requireRedis();
});

afterAll(() => redis?.disconnect());

beforeEach(async () => {
  repo = new BuildRepository(redis, `pf-test-retention-${randomBytes(4).toString('hex')}`);
  storeDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-retention-'));
  store = new FsBlobStore(storeDir);
  await store.init();
  sweeper = new RetentionSweeper(redis, repo, store, RETENTION, createLogger('silent'));
});

/** Stores `content` as a blob last written `ageMs` ago. */
async function blob(content: string, ageMs: number): Promise<{ sha256: string; size: number }> {
  const stored = await store.put(Readable.from([Buffer.from(content)]));
  const when = new Date(Date.now() - ageMs);
  await utimes(path.join(storeDir, 'sha256', stored.sha256.slice(0, 2), stored.sha256), when, when);
  return stored;
}

/** A build of one target, created `createdAgo` ago; finished `finishedAgo` ago with `artifact`, or still running. */
async function build(
  id: string,
  source: { sha256: string },
  createdAgo: number,
  finished?: { ago: number; artifact: { sha256: string; size: number } },
): Promise<void> {
  const record: BuildRecord = {
    id,
    tenant: 'acme',
    createdAt: new Date(Date.now() - createdAgo).toISOString(),
    go: '1.22.12',
    goRequested: '1.22',
    name: id,
    mode: 'plugin',
    host: 'generic',
    targetIds: ['linux-amd64'],
    source: { sha256: source.sha256, size: 10, module: `example.com/${id}`, vendored: false, requirements: false },
  };
  await repo.create(record, () => 'plugforge/build:1.22.12-linux-amd64');
  await repo.appendLog(id, 'linux-amd64', `[plugforge] building ${id}\n`);
  const startedAt = record.createdAt;
  if (!finished) {
    await repo.patchTarget(id, 'linux-amd64', { status: 'running', startedAt });
    return;
  }
  await repo.patchTarget(id, 'linux-amd64', {
    status: 'succeeded',
    startedAt,
    finishedAt: new Date(Date.now() - finished.ago).toISOString(),
    artifact: { name: `${id}-linux-amd64.so`, size: finished.artifact.size, sha256: finished.artifact.sha256 },
  });
}

const exists = (sha256: string) => store.has(sha256);

describe('retention sweep (real Redis, filesystem store)', () => {
  it('keeps every blob a registered host release refers to, and lets them go once it is removed', async () => {
    const releases = new HostReleases(redis, `test-${randomBytes(4).toString('hex')}`, store, 10);
    const age = async (sha256: string) => {
      const when = new Date(Date.now() - 2 * DAY);
      await utimes(path.join(storeDir, 'sha256', sha256.slice(0, 2), sha256), when, when);
    };
    const host = { go: '1.22.12', trimpath: false, tags: [], modules: [], notes: [] };
    const [ref] = await storeHostFingerprints(store, [
      { target: 'linux-amd64', sha256: 'a'.repeat(64), size: 1, go: '1.22.12', fingerprints: { 'example.com/kept': 'f'.repeat(32) } },
    ]);
    await releases.add(
      { kind: 'tenant', tenant: 'acme' },
      { name: 'gotify', version: '2.4.0', go: '1.22.12', from: 'binary', modules: 0, targets: [] },
      { from: 'binary', parts: [{ host, binary: ref! }] },
    );
    const stored = (await releases.get({ kind: 'tenant', tenant: 'acme' }, 'gotify', '2.4.0'))!;
    await age(stored.descriptionBlob);
    await age(ref!.fingerprintsBlob);
    const orphan = await blob('no build nor release refers to this', 2 * DAY);
    await build('recent', await blob('a recent build keeps the store trusted', DAY), DAY, {
      ago: DAY,
      artifact: await blob('its artifact', DAY),
    });
    const keeping = new RetentionSweeper(
      redis,
      repo,
      store,
      RETENTION,
      createLogger('silent'),
      () => undefined,
      () => releases.blobs(),
    );

    expect((await keeping.sweep())?.blobs).toBe(1);
    expect(await exists(orphan.sha256)).toBe(false);
    expect(await exists(stored.descriptionBlob)).toBe(true);
    expect(await exists(ref!.fingerprintsBlob)).toBe(true);
    // What a build against it reads back is whole.
    expect((await releases.describe(stored)) as unknown).toMatchObject({
      parts: [{ binary: { target: 'linux-amd64', fingerprints: { 'example.com/kept': 'f'.repeat(32) } } }],
    });

    expect(await releases.remove({ kind: 'tenant', tenant: 'acme' }, 'gotify', '2.4.0')).toBe(true);
    expect((await keeping.sweep())?.blobs).toBe(2);
    expect(await exists(stored.descriptionBlob)).toBe(false);
    expect(await exists(ref!.fingerprintsBlob)).toBe(false);
  });

  it('removes a build that ended past the retention period with its logs and the blobs only it used, and keeps the rest', async () => {
    const shared = await blob('source shared by an old and a recent build', 40 * DAY);
    const oldArtifact = await blob('artifact of the old build', 40 * DAY);
    const recentArtifact = await blob('artifact of the recent build', 1 * DAY);
    const runningSource = await blob('source of a build still running', 40 * DAY);
    const orphan = await blob('artifact of a target canceled while its probe ran', 2 * DAY);
    const fresh = await blob('stored a moment ago, its build not recorded yet', 10 * 60 * 1000);
    await build('old', shared, 40 * DAY, { ago: 40 * DAY, artifact: oldArtifact });
    await build('recent', shared, 2 * DAY, { ago: 1 * DAY, artifact: recentArtifact });
    // Created long ago but never finished: a build is judged by when it ended.
    await build('stuck', runningSource, 40 * DAY);
    const staleTemp = path.join(storeDir, 'tmp', 'source-abandoned');
    const liveTemp = path.join(storeDir, 'tmp', 'source-arriving');
    await writeFile(staleTemp, 'an upload whose process died');
    await writeFile(liveTemp, 'an upload still arriving');
    await utimes(staleTemp, new Date(Date.now() - 2 * HOUR), new Date(Date.now() - 2 * HOUR));

    const report = await sweeper.sweep();

    expect(report).toEqual({ builds: 1, blobs: 2, temps: 1, bytes: oldArtifact.size + orphan.size });
    expect(await repo.get('old')).toBeUndefined();
    expect(await redis.exists(repo.logKey('old'))).toBe(0);
    expect(await redis.zrange(`${repo.prefix}:builds:acme`, '0', '-1')).toEqual(expect.arrayContaining(['recent', 'stuck']));
    expect(await redis.zscore(`${repo.prefix}:builds:acme`, 'old')).toBeNull();
    expect((await repo.get('recent'))?.status).toBe('succeeded');
    expect((await repo.get('stuck'))?.status).toBe('running');
    expect((await repo.readLogs('recent', '0')).entries).toHaveLength(1);
    expect(await exists(oldArtifact.sha256)).toBe(false);
    expect(await exists(orphan.sha256)).toBe(false);
    for (const kept of [shared, recentArtifact, runningSource, fresh]) expect(await exists(kept.sha256)).toBe(true);
    await expect(store.open(shared.sha256)).resolves.toMatchObject({ size: shared.size });

    // A second sweep finds nothing more to do.
    expect(await sweeper.sweep()).toEqual({ builds: 0, blobs: 0, temps: 0, bytes: 0 });
  });

  it('removes a canceled build by when it was canceled', async () => {
    const source = await blob('source of a canceled build', 40 * DAY);
    await build('canceled-long-ago', source, 40 * DAY);
    expect(await repo.cancel('canceled-long-ago', new Date(Date.now() - 35 * DAY).toISOString())).toEqual(['linux-amd64']);
    await build('canceled-lately', source, 40 * DAY);
    await repo.cancel('canceled-lately', new Date(Date.now() - 1 * DAY).toISOString());

    expect(await sweeper.sweep()).toMatchObject({ builds: 1, blobs: 0 });
    expect(await repo.get('canceled-long-ago')).toBeUndefined();
    expect((await repo.get('canceled-lately'))?.status).toBe('canceled');
    expect(await exists(source.sha256)).toBe(true);
  });

  it('keeps every blob when Redis holds no build at all (a new or flushed Redis), and says so', async () => {
    const artifact = await blob('an artifact whose build record is gone with Redis', 40 * DAY);
    const report = await sweeper.sweep();
    expect(report?.skipped).toMatch(/Redis holds no build/);
    expect(report?.blobs).toBe(0);
    expect(await exists(artifact.sha256)).toBe(true);
  });

  it('empties the store once every build has expired, on a Redis that has held builds', async () => {
    const source = await blob('source of the last build', 40 * DAY);
    const artifact = await blob('artifact of the last build', 40 * DAY);
    await build('last', source, 40 * DAY, { ago: 40 * DAY, artifact });
    expect(await sweeper.sweep()).toMatchObject({ builds: 1, blobs: 2 });
    const leftover = await blob('left by a sweep cut short', 40 * DAY);
    expect(await sweeper.sweep()).toMatchObject({ builds: 0, blobs: 1 });
    expect(await exists(leftover.sha256)).toBe(false);
  });

  it('sweeps in one process at a time', async () => {
    const old = await blob('artifact', 40 * DAY);
    await build('old', old, 40 * DAY, { ago: 40 * DAY, artifact: old });
    await redis.set(`${repo.prefix}:retention:lock`, 'another process', 'PX', 60_000);
    expect(await sweeper.sweep()).toBeUndefined();
    expect(await repo.get('old')).toBeDefined();
    await redis.del(`${repo.prefix}:retention:lock`);
    expect(await sweeper.sweep()).toMatchObject({ builds: 1 });
  });
});

describe('FsBlobStore.remove', () => {
  it('removes a blob last written before the cut-off, keeps one written since, and takes a missing one for done', async () => {
    const old = await blob('old content', 2 * HOUR);
    const rewritten = await blob('content stored again just now', 2 * HOUR);
    // The same content stored again: a fresh file is renamed onto the blob's path.
    await store.put(Readable.from([Buffer.from('content stored again just now')]));
    const cutoff = Date.now() - HOUR;
    expect(await store.remove(old.sha256, cutoff)).toBe(old.size);
    expect(await store.remove(rewritten.sha256, cutoff)).toBe(0);
    expect(await store.has(old.sha256)).toBe(false);
    expect(await store.has(rewritten.sha256)).toBe(true);
    expect(await store.remove(old.sha256, cutoff)).toBe(0);
    // Nothing is left aside in the temp directory.
    const temps = [];
    for await (const t of store.listTemps()) temps.push(t.path);
    expect(temps).toEqual([]);
  });
});

describe('retention configuration', () => {
  it('keeps finished builds 30 days unless told otherwise; 0 keeps them for ever; the grace outlasts an upload', () => {
    expect(loadConfig({}).retention).toEqual({ maxAgeMs: 30 * DAY, graceMs: HOUR });
    expect(loadConfig({ PLUGFORGE_RETENTION_DAYS: '0.5', PLUGFORGE_UPLOAD_TIMEOUT_SECONDS: '3600' }).retention).toEqual({
      maxAgeMs: DAY / 2,
      graceMs: 2 * HOUR,
    });
    expect(loadConfig({ PLUGFORGE_RETENTION_DAYS: '0' }).retention.maxAgeMs).toBe(0);
    expect(() => loadConfig({ PLUGFORGE_RETENTION_DAYS: '-1' })).toThrow(/PLUGFORGE_RETENTION_DAYS="-1"/);
  });
});
