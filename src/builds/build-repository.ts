import type { Redis } from 'ioredis';
import { withScripts, type ScriptedRedis } from '../redis/redis-scripts.js';
import type { TargetId } from '../contract/targets.js';
import {
  deriveFinishedAt,
  deriveStatus,
  TERMINAL,
  type BuildRecord,
  type BuildState,
  type DependencyState,
  type ImagesState,
  type TargetState,
} from './build-document.js';
import { redactUrls } from '../redact-url.js';
import { matrixCells, matrixStatus } from './host-matrix.js';

/** Whose output a log line is: a target's, the dependency phase's, or the image build's. */
export type LogSource = TargetId | 'deps' | 'images';

/** Lines a build's log keeps by default (PLUGFORGE_MAX_LOG_LINES): about 1 MB of compiler output. */
export const DEFAULT_MAX_LOG_LINES = 10_000;

/** One read of a build's log (readLogs). */
export interface LogRead {
  lastId: string;
  entries: { target: LogSource; text: string }[];
  ended: { target: TargetId; status: string }[];
  /** Lines dropped by the cap between the cursor and the first entry read: how many when known (a read from the start), else true. */
  dropped?: number | true;
}

/**
 * Build state in Redis. One hash per build: `record` (fixed at creation), `t:<target>`
 * (each target's state, written by whichever worker runs it) and `canceledAt`. Targets
 * are separate fields so that workers never race each other; the build's own status is
 * derived on read. Logs are a Redis stream per build, one entry a line, of at most
 * `maxLogLines` entries (MAXLEN, exact): the oldest go first, and readers are told where.
 *
 * All methods are safe to call concurrently from several processes.
 */
export class BuildRepository {
  private readonly scripts: ScriptedRedis;

  constructor(
    private readonly redis: Redis,
    readonly prefix = 'pf',
    readonly maxLogLines = DEFAULT_MAX_LOG_LINES,
  ) {
    this.scripts = withScripts(redis);
  }

  /** The same repository on another connection (for blocking reads, which hold theirs). */
  withConnection(redis: Redis): BuildRepository {
    return new BuildRepository(redis, this.prefix, this.maxLogLines);
  }

  private key(id: string): string {
    return `${this.prefix}:build:${id}`;
  }

  logKey(id: string): string {
    return `${this.prefix}:build:${id}:logs`;
  }

  /** `imagesFor`: the build waits for the builder images of this release to be made first. */
  async create(record: BuildRecord, image: (t: TargetId) => string, withDependencies = false, imagesFor?: string): Promise<void> {
    const fields: Record<string, string> = { record: JSON.stringify(record) };
    if (imagesFor) fields.images = JSON.stringify({ status: 'queued', go: imagesFor } satisfies ImagesState);
    if (withDependencies) fields.deps = JSON.stringify({ status: 'queued' } satisfies DependencyState);
    // A matrix build runs nothing: its cells are its builds' targets.
    if (!record.matrix)
      for (const t of record.targetIds) fields[`t:${t}`] = JSON.stringify({ status: 'queued', image: image(t) } satisfies TargetState);
    await this.redis
      .multi()
      .hset(this.key(record.id), fields)
      .zadd(`${this.prefix}:builds:${record.tenant}`, Date.parse(record.createdAt), record.id)
      .exec();
  }

  /**
   * The build's state. A build that shares another's run (`reusedFrom`) shows that run's
   * targets while they are unfinished, and takes each one's end as its own once it has one
   * (written into its own state, so it outlives the build it came from).
   */
  async get(id: string): Promise<BuildState | undefined> {
    const state = await this.own(id);
    if (state?.record.matrix) return this.matrixState(state);
    if (!state?.record.reusedFrom || state.canceledAt || TERMINAL.has(state.status)) return state;
    return this.shared(state, state.record.reusedFrom);
  }

  /** A matrix build as its builds now stand: its cells, its status and end from theirs (src/builds/host-matrix.ts). */
  private async matrixState(state: BuildState): Promise<BuildState> {
    const builds = new Map<string, BuildState | undefined>();
    for (const g of state.record.matrix!.builds) builds.set(g.build, await this.get(g.build));
    const cells = matrixCells(state.record, builds);
    const status = matrixStatus(cells, Boolean(state.canceledAt), builds);
    const finishedAt = TERMINAL.has(status)
      ? cells
          .map((c) => c.finishedAt ?? '')
          .sort()
          .at(-1) || state.canceledAt
      : undefined;
    const { finishedAt: _f, ...rest } = state;
    return { ...rest, status, cells, ...(finishedAt ? { finishedAt } : {}) };
  }

  /** Notes a matrix build canceled (its builds are canceled one by one); a second call keeps the first time. */
  async markCanceled(id: string, at: string): Promise<void> {
    await this.redis.hsetnx(this.key(id), 'canceledAt', at);
  }

  private async shared(state: BuildState, fromId: string): Promise<BuildState> {
    const from = await this.own(fromId);
    const targets = { ...state.targets };
    for (const t of state.record.targetIds) {
      if (targets[t] && TERMINAL.has(targets[t]!.status)) continue;
      const theirs = from?.targets[t];
      if (theirs && !TERMINAL.has(theirs.status)) {
        targets[t] = { ...theirs };
        continue;
      }
      const end: Partial<TargetState> = !theirs
        ? {
            status: 'failed',
            finishedAt: new Date().toISOString(),
            error: {
              code: 'reused_build_gone',
              message: `The identical build ${fromId} whose run this build shared is gone; submit again.`,
            },
          }
        : theirs.status === 'canceled'
          ? {
              status: 'canceled',
              finishedAt: theirs.finishedAt,
              error: {
                code: 'canceled',
                message: `The identical build ${fromId} whose run this build shared was canceled; submit again to build it.`,
              },
            }
          : reusedEnd(theirs);
      await this.patchTarget(state.record.id, t, { ...end, attempt: null, phases: null });
      const { attempt: _a, phases: _p, ...mine } = targets[t] ?? ({ status: 'queued', image: theirs?.image ?? '' } as TargetState);
      targets[t] = { ...mine, ...end } as TargetState;
    }
    const states = Object.values(targets) as TargetState[];
    const finishedAt = deriveFinishedAt(states);
    const { finishedAt: _before, ...rest } = state;
    return { ...rest, targets, status: deriveStatus(states, false, undefined, undefined), ...(finishedAt ? { finishedAt } : {}) };
  }

  private async own(id: string): Promise<BuildState | undefined> {
    const h = await this.redis.hgetall(this.key(id));
    if (!h.record) return undefined;
    const record = JSON.parse(h.record) as BuildRecord;
    const targets: Partial<Record<TargetId, TargetState>> = {};
    for (const t of record.targetIds) {
      const raw = h[`t:${t}`];
      if (raw) targets[t] = JSON.parse(raw, mergedValue) as TargetState;
    }
    const states = Object.values(targets) as TargetState[];
    const canceledAt = h.canceledAt || undefined;
    const finishedAt = deriveFinishedAt(states);
    const dependencies = h.deps ? (JSON.parse(h.deps, mergedValue) as DependencyState) : undefined;
    const images = h.images ? (JSON.parse(h.images, mergedValue) as ImagesState) : undefined;
    return {
      record,
      targets,
      ...(canceledAt ? { canceledAt } : {}),
      ...(dependencies ? { dependencies } : {}),
      ...(images ? { images } : {}),
      status: deriveStatus(states, Boolean(canceledAt), dependencies, images),
      ...(finishedAt ? { finishedAt } : {}),
    };
  }

  /**
   * Merges `patch` into a target's state (a null value removes a field). Unless `force`,
   * a target that is already canceled is left as it is, so a worker finishing late never
   * overwrites a cancel. Resolves to whether the patch was applied. URLs' user info in the
   * patch (an error quoting a proxy URL) is redacted: tenants read the document.
   */
  async patchTarget(
    id: string,
    target: TargetId,
    patch: Partial<Record<keyof TargetState, unknown>>,
    options: { force?: boolean } = {},
  ): Promise<boolean> {
    const applied = await this.scripts.pfPatchState(
      this.key(id),
      `t:${target}`,
      redactUrls(JSON.stringify(patch)),
      options.force ? '1' : '0',
    );
    if (applied === 1 && TERMINAL.has(patch.status as TargetState['status'])) await this.markEnded(id, target, patch.status as string);
    return applied === 1;
  }

  /**
   * An entry without a line on the build's log stream, after a target's final state is
   * written: it wakes whoever follows the log (a blocking read), who then finds the end
   * without waiting out its block. Readers skip it.
   */
  private async markEnded(id: string, target: TargetId, status: string): Promise<void> {
    await this.redis.xadd(this.logKey(id), 'MAXLEN', this.maxLogLines, '*', 't', target, 'e', status);
  }

  /** Merges `patch` into the dependency phase's state (same rules as patchTarget). */
  async patchDependencies(id: string, patch: Partial<Record<keyof DependencyState, unknown>>): Promise<boolean> {
    const applied = await this.scripts.pfPatchState(this.key(id), 'deps', redactUrls(JSON.stringify(patch)), '0');
    return applied === 1;
  }

  /** Merges `patch` into the image preparation's state (same rules as patchTarget). */
  async patchImages(id: string, patch: Partial<Record<keyof ImagesState, unknown>>): Promise<boolean> {
    const applied = await this.scripts.pfPatchState(this.key(id), 'images', redactUrls(JSON.stringify(patch)), '0');
    return applied === 1;
  }

  /**
   * Once its images exist: the build's record takes the exact release they hold, and each
   * target the image it will run in. Only the images job writes these, before any target runs.
   */
  async setToolchain(id: string, go: string, image: (t: TargetId) => string): Promise<void> {
    const h = await this.redis.hget(this.key(id), 'record');
    if (!h) return;
    const record = { ...(JSON.parse(h) as BuildRecord), go };
    await this.redis.hset(this.key(id), 'record', JSON.stringify(record));
    for (const t of record.targetIds) await this.patchTarget(id, t, { image: image(t) });
  }

  /**
   * Marks the build canceled and every unfinished target canceled. Resolves to the targets
   * that were still unfinished (empty when the build had already ended: nothing changes then).
   */
  async cancel(id: string, at: string): Promise<TargetId[]> {
    const res = await this.scripts.pfCancelBuild(this.key(id), at, JSON.stringify([...TERMINAL]));
    return res.filter((f) => f.startsWith('t:')).map((f) => f.slice(2) as TargetId);
  }

  /**
   * Appends build output of one target (or of the dependency phase, "deps", or the image
   * build, "images"): an entry per line (a partial last line is one too), in one round trip,
   * so that the stream's cap counts lines. URLs' user info never reaches a tenant's log
   * (src/redact-url.ts): the go command and the engine quote the proxy URLs they failed on.
   */
  async appendLog(id: string, target: LogSource, text: string): Promise<void> {
    if (!text) return;
    const key = this.logKey(id);
    const batch = this.redis.pipeline();
    for (const line of redactUrls(text).match(/[^\n]*\n|[^\n]+$/g) ?? [])
      batch.xadd(key, 'MAXLEN', this.maxLogLines, '*', 't', target, 'l', line);
    const failed = (await batch.exec())?.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }

  /** Waits up to `blockMs` for an entry after `afterId` (a follower's wait; what came is then read with readLogs). */
  async waitForLogs(id: string, afterId: string, blockMs: number): Promise<boolean> {
    const res = await this.redis.xread('COUNT', 1, 'BLOCK', blockMs, 'STREAMS', this.logKey(id), afterId);
    return Boolean(res?.[0]?.[1]?.length);
  }

  /**
   * Reads log entries after `afterId` ("0" from the start). `lastId` also passes end marks,
   * which are not entries but are told in `ended`: each target's final status, once it is
   * written. `dropped`: the cap removed entries after `afterId` that were never read (the
   * stream's info and the read are one transaction, so the answer fits the entries).
   */
  async readLogs(id: string, afterId: string): Promise<LogRead> {
    const key = this.logKey(id);
    const [info, read] = (await this.redis.multi().call('XINFO', 'STREAM', key).xread('COUNT', 1000, 'STREAMS', key, afterId).exec()) ?? [];
    const res = read?.[1] as [string, [string, string[]][]][] | null | undefined;
    const stream = res?.[0]?.[1] ?? [];
    let lastId = afterId;
    const entries: { target: LogSource; text: string }[] = [];
    const ended: { target: TargetId; status: string }[] = [];
    const dropped = info && !info[0] ? droppedAfter(info[1] as unknown[], afterId) : undefined;
    for (const [entryId, fields] of stream) {
      lastId = entryId;
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
      // An end mark (markEnded) has no line.
      if (f.l !== undefined) entries.push({ target: f.t as LogSource, text: f.l });
      else if (f.e !== undefined) ended.push({ target: f.t as TargetId, status: f.e });
    }
    return { lastId, entries, ended, ...(dropped ? { dropped } : {}) };
  }

  /**
   * Every build id in the per-tenant indexes (`<prefix>:builds:<tenant>`, scored by
   * creation time), a tenant's batch at a time; with `createdBefore`, only builds created
   * before that time (ms since the epoch). Builds created meanwhile may or may not appear.
   */
  async *ids(createdBefore?: number): AsyncGenerator<{ tenant: string; ids: string[] }> {
    const indexPrefix = `${this.prefix}:builds:`;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${indexPrefix}*`, 'COUNT', 500, 'TYPE', 'zset');
      cursor = next;
      for (const key of keys) {
        const ids =
          createdBefore === undefined
            ? await this.redis.zrange(key, '0', '-1')
            : await this.redis.zrangebyscore(key, '-inf', `(${createdBefore}`);
        if (ids.length) yield { tenant: key.slice(indexPrefix.length), ids };
      }
    } while (cursor !== '0');
  }

  /**
   * A tenant's builds from its index, newest first: up to `count` entries created at or
   * before `from` (ms; ties of the same millisecond by id, descending) and not before
   * `since`, skipping the first `skip` of them (the cursor's own and those of its
   * millisecond already listed).
   */
  async indexPage(tenant: string, from: number, since: number, skip: number, count: number): Promise<{ id: string; createdMs: number }[]> {
    const flat = await this.redis.zrevrangebyscore(
      `${this.prefix}:builds:${tenant}`,
      String(from),
      String(since),
      'WITHSCORES',
      'LIMIT',
      skip,
      count,
    );
    const out: { id: string; createdMs: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i]!, createdMs: Number(flat[i + 1]) });
    return out;
  }

  /** Removes a build's state, logs and index entry. Idempotent; the caller decides that it may go. */
  async remove(tenant: string, id: string): Promise<void> {
    await this.redis.multi().del(this.key(id), this.logKey(id)).zrem(`${this.prefix}:builds:${tenant}`, id).exec();
  }
}

/**
 * Reads a value written by the Lua merge below. Redis's cjson writes an empty array as an
 * empty object (a Lua table is either), and no field of a target's or the dependency
 * phase's state is ever an empty object, so one read back is the empty array it was.
 */
function mergedValue(_key: string, value: unknown): unknown {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0 ? [] : value;
}

/**
 * From XINFO STREAM (a flat list of names and values): whether the cap removed entries
 * after `afterId`, and how many when the reader starts from the beginning (every entry
 * added and no longer there; nothing else deletes from a log stream). The cap removes the
 * oldest first, so a cursor older than the first entry left has missed some (Redis 7.0
 * records no id of what trimming removed: a cursor at exactly the last one removed is
 * told so too).
 */
function droppedAfter(info: unknown[], afterId: string): number | true | undefined {
  const field = (name: string) => info[info.indexOf(name) + 1];
  const removed = Number(field('entries-added')) - Number(field('length'));
  const first = (field('first-entry') as [string, unknown] | null)?.[0];
  if (!(removed > 0) || !first || compareStreamIds(afterId, first) >= 0) return undefined;
  return afterId === '0' ? removed : true;
}

/** Orders two stream ids ("ms-seq", or "0"). */
function compareStreamIds(x: string, y: string): number {
  const [xm = 0n, xs = 0n] = x.split('-').map(BigInt);
  const [ym = 0n, ys = 0n] = y.split('-').map(BigInt);
  return xm === ym ? (xs === ys ? 0 : xs < ys ? -1 : 1) : xm < ym ? -1 : 1;
}

/** A shared run's end as the sharing build records it: its result and artifact, and no time of its own (nothing ran for it). */
function reusedEnd(theirs: TargetState): Partial<TargetState> {
  const now = new Date().toISOString();
  return {
    status: theirs.status,
    image: theirs.image,
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    ...(theirs.error ? { error: theirs.error } : {}),
    ...(theirs.artifact ? { artifact: theirs.artifact } : {}),
    ...(theirs.verify ? { verify: theirs.verify } : {}),
  };
}
