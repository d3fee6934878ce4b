import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor, listBuilds, parseListQuery, type ListQuery } from '../src/builds/build-list.js';
import { BuildRepository } from '../src/builds/build-repository.js';
import type { BuildStatus } from '../src/builds/build-document.js';
import { requireRedis } from './support/env.js';
import { sampleRecord } from './support/fixtures.js';

/**
 * GET /v1/builds's listing on real Redis: a tenant's builds, newest first, paged by cursor
 * without a build lost or shown twice (also for builds of the same millisecond), filtered
 * by status, module and creation time; another tenant's builds never appear.
 */
let redis: Redis;
let repo: BuildRepository;
const T0 = Date.parse('2026-11-01T00:00:00.000Z');
/** id → [tenant, created ms, status, module] of every build made. */
const made: { id: string; tenant: string; ms: number; status: BuildStatus; module: string }[] = [];

beforeAll(async () => {
  redis = await requireRedis();
  repo = new BuildRepository(redis, `pf-test-list-${randomBytes(4).toString('hex')}`);
  const statuses: BuildStatus[] = ['succeeded', 'failed', 'queued', 'canceled'];
  for (let i = 0; i < 57; i++) {
    // Every fifth build shares its millisecond with the one before: ties are ordered by id.
    const ms = T0 + (i - Math.floor(i / 5)) * 60_000;
    const tenant = i % 7 === 3 ? 'other' : 'acme';
    const status = statuses[i % statuses.length]!;
    const module = i % 3 === 0 ? 'example.com/gin-plugin' : 'example.com/hello';
    const id = `b${String(i).padStart(3, '0')}${randomBytes(2).toString('hex')}`;
    const record = sampleRecord({
      id,
      tenant,
      createdAt: new Date(ms).toISOString(),
      targetIds: ['linux-amd64'],
      source: { ...sampleRecord().source, module },
    });
    await repo.create(record, () => 'plugforge/build:1.22.12-linux-amd64');
    if (status === 'canceled') await repo.cancel(id, new Date(ms + 1000).toISOString());
    else if (status !== 'queued') await repo.patchTarget(id, 'linux-amd64', { status, finishedAt: new Date(ms + 1000).toISOString() });
    made.push({ id, tenant, ms, status, module });
  }
});

afterAll(() => redis?.disconnect());

/** Every page of a listing, followed by its cursors. */
async function allPages(tenant: string, query: Omit<ListQuery, 'cursor'>): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: ListQuery['cursor'];
  let pages = 0;
  do {
    const page = await listBuilds(repo, tenant, { ...query, ...(cursor ? { cursor } : {}) });
    pages++;
    ids.push(...page.builds.map((b) => b.record.id));
    expect(page.builds.length, 'a page that is not the last is full').toBe(page.next ? query.limit : page.builds.length);
    cursor = page.next;
  } while (cursor && pages < 100);
  return { ids, pages };
}

/** The expected order: newest first, ties by id descending. */
function expected(filter: (b: (typeof made)[number]) => boolean): string[] {
  return made
    .filter(filter)
    .sort((a, b) => b.ms - a.ms || (a.id < b.id ? 1 : -1))
    .map((b) => b.id);
}

describe('GET /v1/builds: the list of builds', () => {
  it("pages through a tenant's builds newest first, each exactly once, none of another tenant's", async () => {
    const { ids, pages } = await allPages('acme', { limit: 7 });
    expect(ids).toEqual(expected((b) => b.tenant === 'acme'));
    expect(pages).toBe(Math.ceil(ids.length / 7));
    expect((await allPages('other', { limit: 100 })).ids).toEqual(expected((b) => b.tenant === 'other'));
    expect((await listBuilds(repo, 'nobody', { limit: 20 })).builds).toEqual([]);
  });

  it('filters by status, module and creation time, paging on through the filter', async () => {
    expect((await allPages('acme', { limit: 3, status: 'failed' })).ids).toEqual(
      expected((b) => b.tenant === 'acme' && b.status === 'failed'),
    );
    expect((await allPages('acme', { limit: 4, status: 'canceled', module: 'example.com/gin-plugin' })).ids).toEqual(
      expected((b) => b.tenant === 'acme' && b.status === 'canceled' && b.module === 'example.com/gin-plugin'),
    );
    const since = T0 + 30 * 60_000;
    expect((await allPages('acme', { limit: 5, since })).ids).toEqual(expected((b) => b.tenant === 'acme' && b.ms >= since));
    expect((await allPages('acme', { limit: 5, status: 'running' })).ids).toEqual([]);
  });

  it('checks its query: numbers, statuses, times and cursors, and refuses unknown parameters', () => {
    expect(parseListQuery({})).toEqual({ limit: 20 });
    expect(parseListQuery({ status: 'failed', module: 'example.com/x', since: '2026-11-01T00:00:00Z', limit: '5' })).toEqual({
      status: 'failed',
      module: 'example.com/x',
      since: T0,
      limit: 5,
    });
    const cursor = encodeCursor({ createdMs: T0, id: 'abc123' });
    expect(parseListQuery({ cursor }).cursor).toEqual({ createdMs: T0, id: 'abc123' });
    const refused = (raw: Record<string, unknown>) => {
      try {
        parseListQuery(raw);
      } catch (err) {
        return `${(err as { code: string }).code}: ${(err as Error).message}`;
      }
      return 'accepted';
    };
    expect(refused({ status: 'done' })).toMatch(/^invalid_option: Parameter "status"/);
    expect(refused({ limit: '0' })).toBe('invalid_option: Parameter "limit": must be a number from 1 to 100.');
    expect(refused({ limit: '101' })).toMatch(/^invalid_option: Parameter "limit"/);
    expect(refused({ since: 'yesterday' })).toMatch(/^invalid_option: Parameter "since"/);
    expect(refused({ cursor: 'bm90IGEgY3Vyc29y' })).toMatch(/^invalid_cursor: Parameter "cursor" is not one this API gave out/);
    expect(refused({ state: 'failed' })).toBe(
      'unknown_option: Unknown parameter "state"; GET /v1/builds takes status, module, since, limit and cursor.',
    );
  });
});
