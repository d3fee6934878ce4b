import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { BuildState } from '../src/builds/build-document.js';
import type { BuildRepository } from '../src/builds/build-repository.js';
import { BuildReuse, type ReuseScope } from '../src/builds/build-reuse.js';
import type { BlobStore } from '../src/store/blob-store.js';
import { sampleRecord } from './support/fixtures.js';

/**
 * Whose builds a submission may share (docs/decisions.md, "The same build is never run
 * twice"), on an index in memory: the tenant's own in flight or succeeded; another tenant's
 * only succeeded, on a release the installation lets cross tenants. The real thing on
 * Redis and Docker: test/build-reuse.test.ts, test/hostile-tenant-sharing.test.ts.
 */
function reuseOf(scope: ReuseScope, builds: BuildState[], sharedRelease?: (go: string) => boolean) {
  const index = new Map<string, string>();
  const redis = {
    get: async (k: string) => index.get(k) ?? null,
    set: async (k: string, v: string) => void index.set(k, v),
  } as unknown as Redis;
  const repo = { get: async (id: string) => builds.find((b) => b.record.id === id) } as unknown as BuildRepository;
  const store = { has: async () => true } as unknown as BlobStore;
  return new BuildReuse(redis, repo, store, 'q', scope, sharedRelease);
}

function build(id: string, tenant: string, status: BuildState['status'], go = '1.22.12'): BuildState {
  const record = sampleRecord({ id, tenant, go, targetIds: ['linux-amd64'] });
  const artifact = { name: 'a.so', size: 1, sha256: 'a'.repeat(64) };
  return {
    record,
    status,
    targets: { 'linux-amd64': { status, image: 'i', ...(status === 'succeeded' ? { artifact } : {}) } },
  } as BuildState;
}

describe('BuildReuse.find', () => {
  it("shares a tenant's own build in flight, never another tenant's", async () => {
    const reuse = reuseOf('shared', [build('a1', 'alice', 'running')]);
    await reuse.remember('alice', 'k', 'a1', 60_000);
    expect((await reuse.find('alice', 'k'))?.record.id).toBe('a1');
    expect(await reuse.find('bob', 'k')).toBeUndefined();
  });

  it("gives another tenant's succeeded build with scope shared, and not with scope tenant", async () => {
    const done = [build('a1', 'alice', 'succeeded')];
    const shared = reuseOf('shared', done);
    await shared.remember('alice', 'k', 'a1', 60_000);
    expect((await shared.find('bob', 'k'))?.record.id).toBe('a1');
    const own = reuseOf('tenant', done);
    await own.remember('alice', 'k', 'a1', 60_000);
    expect(await own.find('bob', 'k')).toBeUndefined();
    expect((await own.find('alice', 'k'))?.record.id).toBe('a1');
  });

  it('gives it across tenants only on a release the installation allows, and to its own tenant always', async () => {
    const reuse = reuseOf('shared', [build('a1', 'alice', 'succeeded', '1.21.0')], (go) => go !== '1.21.0');
    await reuse.remember('alice', 'k', 'a1', 60_000);
    expect(await reuse.find('bob', 'k')).toBeUndefined();
    expect((await reuse.find('alice', 'k'))?.record.id).toBe('a1');
  });

  it("finds the tenant's own build first when another tenant's ran the key since", async () => {
    const reuse = reuseOf('shared', [build('a1', 'alice', 'queued'), build('b1', 'bob', 'running')]);
    await reuse.remember('alice', 'k', 'a1', 60_000);
    await reuse.remember('bob', 'k', 'b1', 60_000);
    expect((await reuse.find('alice', 'k'))?.record.id).toBe('a1');
    expect((await reuse.find('carol', 'k'))?.record.id).toBeUndefined();
  });
});
