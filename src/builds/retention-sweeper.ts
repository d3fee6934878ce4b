import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { withScripts } from '../redis/redis-scripts.js';
import type { Logger } from '../log.js';
import { PeriodicTask } from '../periodic-task.js';
import type { BlobStore } from '../store/blob-store.js';
import type { BuildRepository } from './build-repository.js';
import { TERMINAL, type BuildState } from './build-document.js';

export interface RetentionOptions {
  /** A build that ended longer ago than this is removed, with its logs; 0: builds are kept for ever and nothing is swept. */
  maxAgeMs: number;
  /**
   * Blobs and temp files written within this are never removed, referenced or not: a
   * source stored a moment before its build is recorded, an artifact a moment before its
   * target is, an upload still arriving. Longer than the longest upload.
   */
  graceMs: number;
}

export interface SweepReport {
  builds: number;
  blobs: number;
  temps: number;
  bytes: number;
  /** Why the blob part was skipped, when it was. */
  skipped?: string;
}

/** How often a process sweeps. */
export const SWEEP_INTERVAL_MS = 60 * 60 * 1000;
/** The first sweep after start, so that a restart loop does not sweep at every start. */
const FIRST_SWEEP_MS = 60 * 1000;

/**
 * Retention: removes builds that ended more than `maxAgeMs` ago (state, logs, index
 * entry), then every blob that no build still refers to (sources and artifacts of removed
 * builds, the artifact of a target canceled while its probe ran), and temp files that
 * uploads or writes abandoned. Only what is older than `graceMs` is ever removed.
 *
 * Safe with any number of API processes on one Redis: a sweep takes a lock, and a process
 * that finds it held skips its turn. Safe beside writers: the blob store's `remove` yields
 * to a blob stored again meanwhile. When Redis holds no build at all (a new or flushed
 * Redis) while the store holds blobs, the blob part is skipped: losing Redis must not
 * take the artifacts with it (an installation whose builds have all expired is told apart by
 * a marker the sweeps leave in Redis).
 * Idempotent: a sweep cut short (a process killed, Redis gone) is finished by the next.
 * Errors: a sweep that fails is logged and tried again at the next interval; nothing a
 * build needs is removed before its state is.
 */
export class RetentionSweeper {
  private readonly task: PeriodicTask;

  constructor(
    private readonly redis: Redis,
    private readonly repo: BuildRepository,
    private readonly store: BlobStore,
    private readonly options: RetentionOptions,
    private readonly log: Logger,
    private readonly onSwept: (report: SweepReport) => void = () => undefined,
    /** Blobs kept whatever the builds: those registered host releases refer to (src/builds/host-releases.ts). */
    private readonly kept: () => AsyncIterable<string> = async function* () {},
  ) {
    this.task = new PeriodicTask(
      () => this.sweep(),
      (err) => this.log.warn({ err: err.message }, 'retention sweep failed; trying again at the next'),
    );
  }

  /** Sweeps a minute after start and every SWEEP_INTERVAL_MS after that; nothing when maxAgeMs is 0. */
  start(): void {
    if (this.options.maxAgeMs > 0) this.task.start(FIRST_SWEEP_MS, SWEEP_INTERVAL_MS);
  }

  /** Stops the timer and waits for a sweep under way. */
  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One sweep, at `now`. Resolves to what it removed; undefined when another process holds the lock. */
  async sweep(now = Date.now()): Promise<SweepReport | undefined> {
    const lock = `${this.repo.prefix}:retention:lock`;
    const token = randomBytes(8).toString('hex');
    if ((await this.redis.set(lock, token, 'PX', SWEEP_INTERVAL_MS, 'NX')) !== 'OK') return undefined;
    try {
      const report: SweepReport = { builds: await this.removeEndedBuilds(now - this.options.maxAgeMs), blobs: 0, temps: 0, bytes: 0 };
      await this.removeUnreferencedBlobs(now - this.options.graceMs, report);
      for await (const temp of this.store.listTemps()) {
        if (temp.writtenAt >= now - this.options.graceMs) continue;
        await this.store.discard(temp.path);
        report.temps++;
      }
      if (report.builds || report.blobs || report.temps || report.skipped) this.log.info({ ...report }, 'retention sweep');
      this.onSwept(report);
      return report;
    } finally {
      await withScripts(this.redis).pfReleaseLock(lock, token);
    }
  }

  private async removeEndedBuilds(endedBefore: number): Promise<number> {
    let removed = 0;
    // A build cannot end before it was created: only those created before the cut-off qualify.
    for await (const { tenant, ids } of this.repo.ids(endedBefore)) {
      for (const id of ids) {
        const state = await this.repo.get(id);
        if (state && !(TERMINAL.has(state.status) && endedAt(state) < endedBefore)) continue;
        await this.repo.remove(tenant, id);
        if (state) removed++;
      }
    }
    return removed;
  }

  private async removeUnreferencedBlobs(writtenBefore: number, report: SweepReport): Promise<void> {
    const referenced = new Set<string>();
    let builds = 0;
    for await (const { ids } of this.repo.ids()) {
      for (const id of ids) {
        const state = await this.repo.get(id);
        if (!state) continue;
        builds++;
        referenced.add(state.record.source.sha256);
        for (const target of Object.values(state.targets)) if (target?.artifact) referenced.add(target.artifact.sha256);
        for (const host of state.record.hostBinaries ?? []) referenced.add(host.fingerprintsBlob);
      }
    }
    for await (const sha256 of this.kept()) referenced.add(sha256);
    // Set once this Redis has held a build: an empty Redis without it is a new or flushed
    // one, not an installation whose builds have all expired.
    const seen = `${this.repo.prefix}:retention:seen-builds`;
    if (builds > 0 || report.builds > 0) await this.redis.set(seen, '1');
    const trusted = builds > 0 || (await this.redis.exists(seen)) === 1;
    for await (const blob of this.store.list()) {
      if (referenced.has(blob.sha256) || blob.writtenAt >= writtenBefore) continue;
      if (!trusted) {
        report.skipped =
          'Redis holds no build while the store holds blobs: is this the Redis of this data directory? Nothing was removed from the store.';
        this.log.warn({ store: 'blobs' }, report.skipped);
        return;
      }
      const freed = await this.store.remove(blob.sha256, writtenBefore);
      if (freed > 0) {
        report.blobs++;
        report.bytes += freed;
      }
    }
  }
}

/** When a finished build ended: its last target, its cancel, or (neither recorded) its creation. */
function endedAt(state: BuildState): number {
  return Date.parse(state.finishedAt ?? state.canceledAt ?? state.record.createdAt);
}
