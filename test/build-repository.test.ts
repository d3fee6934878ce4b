import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { BuildRepository } from '../src/builds/build-repository.js';
import { requireRedis } from './support/env.js';

let redis: Redis;

beforeAll(async () => {
  redis = await requireRedis();
});

afterAll(() => {
  redis?.disconnect();
});

describe('BuildRepository (real Redis)', () => {
  it('gives back an empty list in a target state as a list, after any number of merges', async () => {
    const repo = new BuildRepository(redis, `pf-test-${randomBytes(4).toString('hex')}`);
    const record = {
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
    await repo.create(record, () => 'img');
    const verify = { status: 'passed', message: 'ok', method: 'fingerprints', fingerprints: { hostBinary: 'b'.repeat(64), go: '1.22.12', compared: 3, differing: [] } };
    expect(await repo.patchTarget(record.id, 'linux-amd64', { status: 'succeeded', verify })).toBe(true);
    // A second merge decodes and encodes the whole state again in Lua.
    expect(await repo.patchTarget(record.id, 'linux-amd64', { durationMs: 5 })).toBe(true);
    const state = await repo.get(record.id);
    expect(state?.targets['linux-amd64']?.verify).toEqual(verify);
    expect(state?.targets['linux-amd64']?.durationMs).toBe(5);
  });
});
