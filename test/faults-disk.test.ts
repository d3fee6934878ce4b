import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { containersLeft, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';

const run = promisify(execFile);

/**
 * The blob store's disk fills up: PLUGFORGE_DATA_DIR on a 6 MiB tmpfs. An upload that
 * does not fit and artifacts that do not fit must fail with a clear error, leave no file
 * half-written, and leave the service serving. Mounting needs root (./scripts/test runs as
 * root, as CI does).
 */
let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let dataDir = '';

async function blobFiles(): Promise<string[]> {
  const root = path.join(dataDir, 'blobs', 'sha256');
  const out: string[] = [];
  for (const a of await readdir(root).catch(() => [])) for (const f of await readdir(path.join(root, a))) out.push(path.join(root, a, f));
  return out;
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('This test mounts a small tmpfs as the data directory and needs root: run ./scripts/test as root (CI does).');
  redis = await requireRedis();
  docker = await requireDocker();
  await requireImages(docker);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-fulldisk-'));
  await run('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', dataDir]);
  service = await startService('serve', await testConfig({ PLUGFORGE_DATA_DIR: dataDir, PLUGFORGE_ATTEMPTS: '2' }));
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
});

afterAll(async () => {
  await service?.stop();
  if (dataDir) await run('umount', [dataDir]).catch(() => undefined);
  redis?.disconnect();
});

describe('a full blob store', () => {
  it('refuses an upload that does not fit with a clear error, keeping no part of it', async () => {
    const big = await tarOf({ ...GOTIFY_PLUGIN, 'data.bin': randomBytes(16 * 1024 * 1024) }, { gzip: true });
    const res = await api.submit(big, 'targets=linux-amd64');
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(res.body.error.message).toMatch(/ENOSPC|no space/i);
    expect(await readdir(path.join(dataDir, 'blobs', 'tmp'))).toEqual([]);
    expect((await api.get('/healthz')).status).toBe(200);
  });

  it('fails the targets whose artifacts do not fit, truthfully, with every stored blob whole, and builds again once there is room', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'host=gotify');
    expect(res.status).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 600_000);
    const failed = Object.entries(doc.targets).filter(([, t]: [string, any]) => t.status === 'failed');
    expect(doc.status).toBe('failed');
    expect(failed.length).toBeGreaterThan(0);
    for (const [, t] of failed as [string, any][]) expect(t.error.code).toBe('artifact_store_failed');
    // No blob is half-written: each file's content hashes to its name.
    for (const file of await blobFiles())
      expect(
        createHash('sha256')
          .update(await readFile(file))
          .digest('hex'),
      ).toBe(path.basename(file));
    expect(await readdir(path.join(dataDir, 'blobs', 'tmp'))).toEqual([]);
    // No container of the build is left.
    expect(await containersLeft(docker, [`org.plugforge.build=${res.body.id}`])).toEqual([]);
    // Room again (the tmpfs grows): the service builds as before.
    await run('mount', ['-o', 'remount,size=256m', dataDir]);
    const again = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'host=gotify&targets=linux-amd64,linux-arm64');
    expect((await api.waitFor(again.body.id, undefined, 600_000)).status).toBe('succeeded');
  }, 900_000);
});
