import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { BuildRepository } from '../src/builds/build-repository.js';
import { requireRedis } from './support/env.js';
import { eventually } from './support/eventually.js';

let redis: Redis;

beforeAll(async () => {
  redis = await requireRedis();
});

afterAll(() => {
  redis?.disconnect();
});

function sampleBuild(): BuildRecord {
  return {
    id: `r${randomBytes(6).toString('hex')}`,
    tenant: 'public',
    createdAt: new Date().toISOString(),
    go: '1.22.12',
    goRequested: '1.22',
    name: 'x',
    mode: 'plugin',
    host: 'generic',
    targetIds: ['linux-amd64'],
    source: { sha256: 'a'.repeat(64), size: 1, module: 'example.com/x', vendored: false, requirements: false },
  } as BuildRecord;
}

describe('BuildRepository (real Redis)', () => {
  it('keeps no URL user info in a log line or an error a tenant reads (an on-demand image error quoting the proxy)', async () => {
    const repo = new BuildRepository(redis, `pf-test-${randomBytes(4).toString('hex')}`);
    const record = sampleBuild();
    await repo.create(record, () => 'img', false, '1.21.5');
    const quoted = 'Could not reach the module proxy https://ops:hunter2@proxy.example/ (dial tcp: connection refused)';
    await repo.appendLog(record.id, 'images', `[images] linux-amd64: ${quoted}\n`);
    await repo.patchImages(record.id, { status: 'failed', error: { code: 'toolchain_proxy_unreachable', message: quoted } });
    await repo.patchTarget(record.id, 'linux-amd64', { status: 'failed', error: { code: 'toolchain_proxy_unreachable', message: quoted } });
    const state = await repo.get(record.id);
    const log = (await repo.readLogs(record.id, '0')).entries.map((e) => e.text).join('');
    expect(JSON.stringify(state)).not.toContain('hunter2');
    expect(log).not.toContain('hunter2');
    expect(state?.images?.error?.message).toContain('https://***@proxy.example/');
  });

  it('gives back an empty list in a target state as a list, after any number of merges', async () => {
    const repo = new BuildRepository(redis, `pf-test-${randomBytes(4).toString('hex')}`);
    const record = sampleBuild();
    await repo.create(record, () => 'img');
    const verify = {
      status: 'passed',
      message: 'ok',
      method: 'fingerprints',
      fingerprints: { hostBinary: 'b'.repeat(64), go: '1.22.12', compared: 3, differing: [] },
    };
    expect(await repo.patchTarget(record.id, 'linux-amd64', { status: 'succeeded', verify })).toBe(true);
    // A second merge decodes and encodes the whole state again in Lua.
    expect(await repo.patchTarget(record.id, 'linux-amd64', { durationMs: 5 })).toBe(true);
    const state = await repo.get(record.id);
    expect(state?.targets['linux-amd64']?.verify).toEqual(verify);
    expect(state?.targets['linux-amd64']?.durationMs).toBe(5);
  });

  it("wakes a reader blocked on the log when a target's final state is written, and the mark is no line of the log", async () => {
    const repo = new BuildRepository(redis, `pf-test-${randomBytes(4).toString('hex')}`);
    const record = sampleBuild();
    await repo.create(record, () => 'img');
    await repo.appendLog(record.id, 'linux-amd64', 'compiling\n');
    const { lastId } = await repo.readLogs(record.id, '0');
    const reader = redis.duplicate();
    try {
      const readerId = await reader.client('ID');
      const started = Date.now();
      const blocked = repo.withConnection(reader).waitForLogs(record.id, lastId, 10_000);
      // The reader is blocked in its XREAD (CLIENT LIST's flag b) before the state is written.
      await eventually(async () => new RegExp(`^id=${readerId} .*flags=b .*cmd=xread`, 'm').test((await redis.client('LIST')) as string), {
        intervalMs: 20,
        message: 'the reader blocked in XREAD',
      });
      // Not final: no mark.
      await repo.patchTarget(record.id, 'linux-amd64', { status: 'running' });
      await repo.patchTarget(record.id, 'linux-amd64', { status: 'succeeded' });
      expect(await blocked).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
      const woken = await repo.readLogs(record.id, lastId);
      expect(woken.entries).toEqual([]);
      expect(woken.ended).toEqual([{ target: 'linux-amd64', status: 'succeeded' }]);
    } finally {
      reader.disconnect();
    }
    expect((await repo.readLogs(record.id, '0')).entries).toEqual([{ target: 'linux-amd64', text: 'compiling\n' }]);
  });

  it('keeps a log stream at its cap in lines, the last ones, and tells a reader from the start how many were dropped', async () => {
    const repo = new BuildRepository(redis, `pf-test-${randomBytes(4).toString('hex')}`, 50);
    const record = sampleBuild();
    await repo.create(record, () => 'img');
    const lines = Array.from({ length: 300 }, (_, i) => `line ${i}\n`);
    // Batches as a log sink sends them, one split line across two.
    await repo.appendLog(record.id, 'linux-amd64', lines.slice(0, 150).join('') + 'half ');
    await repo.appendLog(record.id, 'linux-amd64', 'a line\n' + lines.slice(150).join(''));
    expect(await redis.xlen(repo.logKey(record.id))).toBe(50);
    const read = await repo.readLogs(record.id, '0');
    expect(read.dropped).toBe(252);
    expect(read.entries.map((e) => e.text)).toEqual(lines.slice(-50));
    expect((await repo.readLogs(record.id, read.lastId)).dropped).toBeUndefined();
    // A follower that fell behind by more than the cap is told that lines went past it unread.
    await repo.appendLog(record.id, 'linux-amd64', lines.slice(0, 60).join(''));
    expect((await repo.readLogs(record.id, read.lastId)).dropped).toBe(true);
    // A short log loses nothing and says so.
    const short = sampleBuild();
    await repo.appendLog(short.id, 'linux-amd64', 'one\ntwo\n');
    expect(await repo.readLogs(short.id, '0')).toMatchObject({ entries: [{ text: 'one\n' }, { text: 'two\n' }] });
    expect((await repo.readLogs(short.id, '0')).dropped).toBeUndefined();
  });
});
