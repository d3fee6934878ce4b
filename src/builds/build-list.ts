import { z } from 'zod';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { BUILD_STATUSES, type BuildState } from './build-document.js';
import type { BuildRepository } from './build-repository.js';

/** The query of GET /v1/builds (README): filters, page size and the cursor of the page before. */
export const listQuerySchema = z
  .object({
    status: z.enum(BUILD_STATUSES).optional(),
    module: z.string().min(1).max(512).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    limit: z
      .string()
      .regex(/^\d{1,3}$/, 'must be a number from 1 to 100')
      .optional(),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export interface ListQuery {
  status?: BuildState['status'];
  module?: string;
  /** Only builds created at or after this (ms since the epoch). */
  since?: number;
  limit: number;
  cursor?: ListCursor;
}

/** Where a page ended: the creation time (ms) and id of the last build it looked at. */
export interface ListCursor {
  createdMs: number;
  id: string;
}

export const DEFAULT_LIST_LIMIT = 20;
const MAX_LIST_LIMIT = 100;
/** Builds read per page at most: a filter that matches few builds ends a page early, with a cursor to go on from. */
const MAX_SCANNED = 1000;
const BATCH = 100;

/** Checks the query of GET /v1/builds; unknown parameters are refused, as for POST. */
export function parseListQuery(raw: Record<string, unknown>): ListQuery {
  const parsed = listQuerySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      throw new PlugforgeError(
        'unknown_option',
        `Unknown parameter ${issue.keys.map((k) => `"${k}"`).join(', ')}; GET /v1/builds takes status, module, since, limit and cursor.`,
      );
    }
    throw new PlugforgeError('invalid_option', `Parameter "${String(issue?.path[0] ?? 'query')}": ${issue?.message ?? 'invalid'}.`);
  }
  const q = parsed.data;
  const limit = q.limit === undefined ? DEFAULT_LIST_LIMIT : Number(q.limit);
  if (limit < 1 || limit > MAX_LIST_LIMIT)
    throw new PlugforgeError('invalid_option', `Parameter "limit": must be a number from 1 to ${MAX_LIST_LIMIT}.`);
  return {
    ...(q.status ? { status: q.status } : {}),
    ...(q.module ? { module: q.module } : {}),
    ...(q.since ? { since: Date.parse(q.since) } : {}),
    limit,
    ...(q.cursor ? { cursor: decodeCursor(q.cursor) } : {}),
  };
}

export function encodeCursor(c: ListCursor): string {
  return Buffer.from(`${c.createdMs}:${c.id}`).toString('base64url');
}

function decodeCursor(text: string): ListCursor {
  const m = /^(\d{1,15}):([a-z0-9]{1,40})$/.exec(Buffer.from(text, 'base64url').toString('latin1'));
  if (!m)
    throw new PlugforgeError(
      'invalid_cursor',
      'Parameter "cursor" is not one this API gave out; use the "next" of the page before, or leave it out for the first page.',
    );
  return { createdMs: Number(m[1]), id: m[2]! };
}

/**
 * One page of a tenant's builds, newest first, filtered. Reads the tenant's index in
 * batches until the page is full or MAX_SCANNED builds were looked at; `next` is where
 * the next page starts, absent when nothing older is left. A build removed meanwhile (the
 * retention sweep) is left out.
 */
export async function listBuilds(
  repo: BuildRepository,
  tenant: string,
  query: ListQuery,
): Promise<{ builds: BuildState[]; next?: ListCursor }> {
  const builds: BuildState[] = [];
  let from = query.cursor?.createdMs ?? Number.MAX_SAFE_INTEGER;
  // Entries of the cursor's millisecond that sort at or before its id were listed already.
  let skipFrom = query.cursor;
  let scanned = 0;
  let last: ListCursor | undefined;
  while (scanned < MAX_SCANNED) {
    const entries = await repo.indexPage(tenant, from, query.since ?? 0, 0, BATCH);
    const fresh = skipFrom ? entries.filter((e) => olderThan(e, skipFrom!)) : entries;
    if (!fresh.length) {
      if (entries.length < BATCH) return { builds };
      // A whole batch of one millisecond, listed already (hardly ever): go on below it.
      from -= 1;
      skipFrom = undefined;
      continue;
    }
    for (const entry of fresh) {
      scanned++;
      last = entry;
      const state = await repo.get(entry.id);
      if (state && matches(state, query)) builds.push(state);
      if (builds.length === query.limit) return { builds, ...(await more(repo, tenant, entry, query)) };
    }
    from = last!.createdMs;
    skipFrom = last;
  }
  return { builds, ...(last ? { next: last } : {}) };
}

/** The cursor after `entry`, when anything older is left. */
async function more(repo: BuildRepository, tenant: string, entry: ListCursor, query: ListQuery): Promise<{ next?: ListCursor }> {
  const after = await repo.indexPage(tenant, entry.createdMs, query.since ?? 0, 0, BATCH);
  return after.some((e) => olderThan(e, entry)) ? { next: entry } : {};
}

/** Whether an index entry comes after `c` in the list (newest first; ties by id, descending). */
function olderThan(e: ListCursor, c: ListCursor): boolean {
  return e.createdMs < c.createdMs || (e.createdMs === c.createdMs && e.id < c.id);
}

function matches(state: BuildState, query: ListQuery): boolean {
  return (!query.status || state.status === query.status) && (!query.module || state.record.source.module === query.module);
}
