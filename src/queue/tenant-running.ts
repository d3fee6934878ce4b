import { DelayedError, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { TERMINAL, type BuildState } from '../builds/build-document.js';
import type { BuildRepository } from '../builds/build-repository.js';
import type { Logger } from '../log.js';
import { takePlace } from '../redis/redis-scripts.js';
import { jobIdOf } from './job-ids.js';
import { jobPart, type BuildJobData } from './build-queue.js';

/**
 * How long a parked job sleeps when nobody wakes it. Wake-ups are what normally start it
 * (a build ending promotes the next parked job at once); this only bounds the wait after
 * a wake-up was lost: a worker killed between ending a build and promoting, or a build
 * canceled while none of its targets ran, whose place is given back on the next check.
 */
export const PARKED_RECHECK_MS = 5_000;

/** How many parked jobs one wake-up looks at, oldest first. */
const WAKE_SCAN = 200;

/**
 * Caps the builds of one tenant that run at once. A build takes one of its tenant's places
 * when a worker picks up its first job (the dependency phase or a target) and keeps it until
 * the build has ended, so its other targets, retries included, always run beside it and
 * two builds of a capped tenant never interleave.
 *
 * A job whose tenant has no place free is *parked*: moved back to BullMQ's delayed set
 * (`job.moveToDelayed` + `DelayedError`: it stays `queued`, keeps its attempts, and frees
 * the worker's slot for other tenants' jobs) and recorded in a per-tenant set, oldest
 * first. When a build ends, or takes a place, the parked jobs that can now run are promoted
 * to the wait list. No process polls: a parked job is looked at again only when woken, or
 * after PARKED_RECHECK_MS.
 *
 * State, in Redis, per queue and tenant: `…:running` (sorted set: build id → since) and
 * `…:parked` (sorted set: `<build>/<job id>` → first parked). Taking a place is one Lua step, so
 * concurrent workers never overshoot the cap. Places of builds that ended without a worker
 * seeing it (canceled while queued, record removed) are given back by the next check.
 * Safe for any number of workers on one Redis. Idempotent: a job run again (a worker that
 * died) finds its build's place held. Errors: a Redis that cannot be reached rejects `run`
 * before the work starts; BullMQ then retries the job (its attempts are not spent on it).
 */
export class TenantRunningLimits {
  constructor(
    private readonly redis: Redis,
    private readonly repo: BuildRepository,
    private readonly queue: Queue<BuildJobData>,
    /** 0: no limit. */
    private readonly maxRunning: number,
    private readonly log: Logger,
  ) {}

  /**
   * Runs `work` once the job's build holds a running place, and settles the place after.
   * Without a place free the job is parked and this throws DelayedError, which the BullMQ
   * processor must let through (the worker then takes its next job).
   */
  async run<T>(job: Job<BuildJobData>, token: string | undefined, work: () => Promise<T>): Promise<T> {
    if (this.maxRunning === 0 || token === undefined) return work();
    const state = await this.repo.get(job.data.buildId);
    // A build that is gone or over needs no place: `work` drops its job.
    if (!state || TERMINAL.has(state.status)) return work();
    const tenant = state.record.tenant;
    await this.admit(job, token, state);
    try {
      return await work();
    } finally {
      await this.settle(tenant, job.data.buildId).catch((err: Error) =>
        this.log.warn({ tenant, err: err.message }, 'could not give back a running place'),
      );
    }
  }

  /** Takes (or confirms) the build's place, or parks the job and throws DelayedError. */
  private async admit(job: Job<BuildJobData>, token: string, state: BuildState): Promise<void> {
    const tenant = state.record.tenant;
    const { buildId } = job.data;
    const jobId = job.id ?? jobIdOf(buildId, jobPart(job));
    await this.pruneEnded(tenant, buildId);
    const outcome = await takePlace(this.redis, {
      places: this.runningKey(tenant),
      parked: { key: this.parkedKey(tenant), member: parkedMember(buildId, jobId) },
      limit: this.maxRunning,
      member: buildId,
      now: Date.now(),
    });
    if (outcome === 'held') return;
    if (outcome === 'taken') {
      // Targets of this build parked before it had a place can run now.
      await this.wake(tenant);
      return;
    }
    await job.moveToDelayed(Date.now() + PARKED_RECHECK_MS, token);
    if (outcome === 'parked') {
      await this.repo.appendLog(
        buildId,
        jobPart(job),
        `[plugforge] waiting: tenant ${tenant} has ${this.maxRunning} build${this.maxRunning === 1 ? '' : 's'} running, its limit; this starts when one ends\n`,
      );
      this.log.info({ jobId, tenant, limit: this.maxRunning }, 'job parked: tenant at its running limit');
    }
    // A place may have come free, or this build taken one, while the job was being parked.
    await this.wake(tenant);
    throw new DelayedError(`tenant ${tenant} is at its limit of ${this.maxRunning} running builds`);
  }

  /** Gives the build's place back if the build has ended, then wakes what can run. */
  private async settle(tenant: string, buildId: string): Promise<void> {
    const state = await this.repo.get(buildId);
    if (state && !TERMINAL.has(state.status)) return;
    await this.redis.zrem(this.runningKey(tenant), buildId);
    await this.wake(tenant);
  }

  /**
   * Promotes parked jobs, oldest first: every one whose build holds a place, and as many
   * others as there are places free. Jobs that left the queue (canceled, removed) are
   * forgotten. A promotion that fails (the job is still being parked) is harmless: that
   * job wakes the tenant itself once parked.
   */
  private async wake(tenant: string): Promise<void> {
    const parkedKey = this.parkedKey(tenant);
    const parked = await this.redis.zrange(parkedKey, '0', String(WAKE_SCAN - 1));
    if (!parked.length) return;
    await this.pruneEnded(tenant);
    const holding = new Set(await this.redis.zrange(this.runningKey(tenant), '0', '-1'));
    let free = this.maxRunning - holding.size;
    for (const member of parked) {
      const { buildId, jobId } = parseParked(member);
      const ownPlace = holding.has(buildId);
      if (!ownPlace && free <= 0) continue;
      const job = await this.queue.getJob(jobId);
      const state = job ? await job.getState() : 'unknown';
      if (!job || state === 'completed' || state === 'failed' || state === 'unknown') {
        await this.redis.zrem(parkedKey, member);
        continue;
      }
      // A job already waiting or active takes its place by itself.
      if (state === 'delayed') await job.promote().catch(() => undefined);
      if (!ownPlace) {
        holding.add(buildId);
        free--;
      }
    }
  }

  /** Gives back the places of builds, other than `except`, that have ended or vanished. */
  private async pruneEnded(tenant: string, except?: string): Promise<void> {
    const key = this.runningKey(tenant);
    const ended: string[] = [];
    for (const buildId of await this.redis.zrange(key, '0', '-1')) {
      if (buildId === except) continue;
      const state = await this.repo.get(buildId);
      if (!state || TERMINAL.has(state.status)) ended.push(buildId);
    }
    if (ended.length) await this.redis.zrem(key, ...ended);
  }

  private runningKey(tenant: string): string {
    return `pf:${this.queue.name}:tenant:${tenant}:running`;
  }

  private parkedKey(tenant: string): string {
    return `pf:${this.queue.name}:tenant:${tenant}:parked`;
  }
}

/** A parked job as stored: its build, so a wake-up sees which build it belongs to without reading the job. */
function parkedMember(buildId: string, jobId: string): string {
  return `${buildId}/${jobId}`;
}

function parseParked(member: string): { buildId: string; jobId: string } {
  const slash = member.indexOf('/');
  return { buildId: member.slice(0, slash), jobId: member.slice(slash + 1) };
}
