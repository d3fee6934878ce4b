import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { DelayedError, Worker, type Job } from 'bullmq';
import { listToolchainImages, type ToolchainImage } from '../images/image-catalog.js';
import { BuildQueue, DEPENDENCIES_JOB, IMAGES_JOB, type BuildJobData } from '../queue/build-queue.js';
import type { WorkerReport } from '../queue/worker-registry.js';
import { TenantRunningLimits } from '../queue/tenant-running.js';
import { TARGET_IDS } from '../contract/targets.js';
import { withDeadline } from '../deadline.js';
import { jobIdOf } from '../queue/job-ids.js';
import { LoadCapabilities } from './load-capabilities.js';
import { LABELS } from '../runtime/build-spec.js';
import type { BuildWorkerDeps, JobContext } from './job-context.js';
import { runImageJob } from './image-job.js';
import { runDependencyJob } from './dependency-job.js';
import { runTargetJob } from './target-job.js';

export type { BuildWorkerDeps } from './job-context.js';

/** How often running jobs are checked against their builds' state for a cancel pub/sub did not bring. */
const CANCEL_CHECK_MS = 3_000;

/** How long a verify=loaded target may wait for a worker that can load it. */
const PLACEMENT_WAIT_MS = 10 * 60_000;

/** The roles of the containers a job makes: its builds and probes, their disks' holders, its cache upkeep. */
const CONTAINER_ROLES = ['build', 'disk', 'cache'] as const;

/** What the orphan sweep knows of the worker that runs it. */
export interface SweepingWorker {
  id: string;
  /** Workers of the installation with a fresh report, this one included. */
  live: ReadonlySet<string>;
  /** Jobs this worker runs or is tearing down. */
  jobs: ReadonlySet<string>;
  /** Whether this worker's capability checks are running. */
  checking: boolean;
}

/**
 * Whether the sweep removes a container with these labels. A build container (or disk, or
 * cache helper) is an orphan when its worker is gone, or is this worker and its job is not
 * running here. A check container (a short command: a capability check, or an image job's
 * toolchain fetch) likewise, and this worker's own without a job only when no capability
 * check runs.
 */
export function isOrphan(labels: Record<string, string>, kind: 'build' | 'check', self: SweepingWorker): boolean {
  const owner = labels[LABELS.worker] ?? '';
  if (!self.live.has(owner)) return true;
  if (owner !== self.id) return false;
  const job = labels[LABELS.job];
  if (kind === 'build') return !self.jobs.has(job ?? '');
  return job !== undefined ? !self.jobs.has(job) : !self.checking;
}

/**
 * One worker process: takes jobs (as many at once as configured) and gives each to the
 * handler of its kind (images, dependencies, a target); keeps its report
 * (heartbeats), the jobs it runs, their teardowns and hand-overs. Delivery is
 * at-least-once: a job whose worker died is taken again by BullMQ's stalled-job check, and
 * the new run first removes what the old one left behind. Containers of workers that are
 * no longer alive are swept periodically.
 */
export class BuildWorker {
  readonly id = `${
    os
      .hostname()
      .replace(/[^a-z0-9-]/gi, '')
      .toLowerCase() || 'worker'
  }-${process.pid}-${randomBytes(3).toString('hex')}`;
  private worker?: Worker<BuildJobData>;
  private queue?: BuildQueue;
  /** Jobs running in this process: job id → build id. */
  private readonly activeJobs = new Map<string, string>();
  /** Jobs that ended whose containers are still being removed (after the job freed its slot). */
  private readonly tearingDown = new Map<string, Promise<void>>();
  private timers: NodeJS.Timeout[] = [];
  private readonly startedAt = new Date().toISOString();
  private images: ToolchainImage[] = [];
  private dockerError: string | undefined;
  private instanceId = '';
  private readonly loads: LoadCapabilities;
  /** The background capability checks under way, if any (stop() lets them finish: each removes its container). */
  private checkingLoads: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly deps: BuildWorkerDeps) {
    this.images = deps.staticImages ?? [];
    const engine = deps.imageEngine;
    // Check containers carry this worker's labels: one left by a worker that died is swept.
    const checkLabels = () => ({ [LABELS.worker]: this.id, [LABELS.instance]: this.instanceId });
    this.loads =
      deps.loads ??
      new LoadCapabilities(
        engine ? (image, cmd) => engine.runCommand(image, cmd, { timeoutMs: 60_000, labels: checkLabels() }) : undefined,
        deps.config.build.probe386,
      );
    // What a check learnt is reported at once, not at the next heartbeat: /readyz "load" and
    // the placement of verify=loaded jobs read it from the report.
    this.loads.onLearnt(() => void this.report(false));
  }

  async start(): Promise<void> {
    const { config, log } = this.deps;
    this.instanceId = await this.deps.registry.instanceId();
    await this.heartbeat(true);
    if (config.sweepOrphans) await this.sweep().catch((err: Error) => log.warn({ err: err.message }, 'orphan sweep failed'));

    await this.deps.cancel.subscribe(this.deps.subscriber, (buildId) => {
      for (const target of [...TARGET_IDS, 'deps' as const]) {
        const jobId = jobIdOf(buildId, target);
        if (this.activeJobs.has(jobId) && this.worker?.cancelJob(jobId, 'canceled')) log.info({ jobId }, 'cancel requested');
      }
    });

    this.queue = new BuildQueue(this.deps.connection, config.queueName, config.build.attempts);
    // A job of a tenant at its running limit is parked (DelayedError) instead of run.
    const running = new TenantRunningLimits(this.deps.connection, this.deps.repo, this.queue.queue, config.tenancy.maxRunningBuilds, log);
    const ctx = this.jobContext(this.queue);
    this.worker = new Worker<BuildJobData>(
      config.queueName,
      (job, token, signal) => {
        const s = signal ?? new AbortController().signal;
        // Making images holds no tenant's running place: the build is not running yet.
        if (job.name === IMAGES_JOB) return runImageJob(ctx, job);
        return running.run(job, token, () =>
          job.name === DEPENDENCIES_JOB ? runDependencyJob(ctx, job, s) : runTargetJob(ctx, job, s, token),
        );
      },
      {
        connection: this.deps.connection,
        concurrency: config.workerConcurrency,
        // A dead worker's job is taken again after its lock expires (at most ~lockDuration).
        lockDuration: 20_000,
        stalledInterval: 10_000,
        maxStalledCount: 5,
        autorun: true,
      },
    );
    let queueDown = false;
    this.worker.on('error', (err) => {
      // Log an outage once, not once per reconnect attempt.
      if (!queueDown) log.error({ err: err.message }, 'queue unreachable; waiting for Redis');
      queueDown = true;
    });
    this.worker.on('ready', () => {
      if (queueDown) log.info('queue reachable again');
      queueDown = false;
    });

    this.timers.push(setInterval(() => void this.heartbeat(false), 5_000));
    // Cancels normally arrive over pub/sub; one this process missed (a dropped connection,
    // a subscriber not yet ready) is found here, in the build's state.
    this.timers.push(setInterval(() => void this.checkCanceled().catch(() => undefined), CANCEL_CHECK_MS));
    if (config.sweepOrphans) this.timers.push(setInterval(() => void this.sweep().catch(() => undefined), 30_000));
    for (const t of this.timers) t.unref();
    log.info({ worker: this.id, concurrency: config.workerConcurrency }, 'worker started');
  }

  /** Stops taking jobs, lets running ones finish (up to `graceMs`), then cancels the rest. */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    // A capability check under way removes its container when it ends: let it.
    if (this.checkingLoads) await withDeadline(this.checkingLoads, 65_000, undefined);
    if (this.worker) {
      const closing = this.worker.close().then(() => true);
      const timer = setTimeout(() => this.worker?.cancelAllJobs('worker stopping'), graceMs);
      // A close that cannot reach Redis would wait forever: give up on it after the grace.
      if (!(await withDeadline(closing, graceMs + 5_000, false))) void this.worker.close(true).catch(() => undefined);
      clearTimeout(timer);
    }
    if (this.queue)
      await withDeadline(
        this.queue.close().catch(() => undefined),
        2_000,
        undefined,
      );
    // Each teardown has its own deadline per container; what one leaves, removeOwn removes.
    await withDeadline(Promise.allSettled(this.tearingDown.values()), 65_000, undefined);
    // Its jobs have ended: whatever of its own is still on the engine is a leftover (a removal
    // that failed while the engine restarted, say).
    await withDeadline(
      this.removeOwn().catch(() => undefined),
      15_000,
      undefined,
    );
    await withDeadline(
      this.deps.registry.remove(this.id).catch(() => undefined),
      2_000,
      undefined,
    );
  }

  /** Removes every container and disk of this worker (once it runs no job and no check). */
  private async removeOwn(): Promise<void> {
    const mine = { [LABELS.worker]: this.id };
    for (const c of await this.containersOf(mine, [...CONTAINER_ROLES, 'check'])) {
      await this.deps.runtime.destroy({ id: c.id }).catch(() => undefined);
      this.deps.log.info({ container: c.id.slice(0, 12), role: c.role }, 'removed a container this worker had left');
    }
    for (const d of await this.deps.runtime.listDisks({ [LABELS.instance]: this.instanceId, ...mine }))
      await this.deps.runtime.removeDisk(d.name).catch(() => undefined);
  }

  /** This installation's containers carrying `labels`, of any of `roles`, each with its role. */
  private async containersOf(
    labels: Record<string, string>,
    roles: readonly string[],
  ): Promise<{ id: string; labels: Record<string, string>; role: string }[]> {
    const found = [];
    for (const role of roles) {
      for (const c of await this.deps.runtime.list({ ...labels, [LABELS.instance]: this.instanceId, [LABELS.role]: role }))
        found.push({ ...c, role });
    }
    return found;
  }

  /** What the job handlers get of this worker (once started: its instance and queue are known). */
  private jobContext(queue: BuildQueue): JobContext {
    return {
      deps: this.deps,
      workerId: this.id,
      instanceId: this.instanceId,
      queue,
      loads: this.loads,
      images: () => this.images,
      setImages: (images) => {
        this.images = images;
      },
      running: (jobId, buildId) => void this.activeJobs.set(jobId, buildId),
      done: (jobId) => void this.activeJobs.delete(jobId),
      removeContainers: (labels) => this.removeContainers(labels),
      handOver: (job, token, can, reason) => this.handOver(job, token, can, reason),
      tearDownLater: (jobId, work) => this.tearDownLater(jobId, work),
    };
  }

  /**
   * Lets a target's teardown (and what follows it: its phases recorded) go on while the
   * worker takes its next job; the sweep leaves its containers alone meanwhile, and a
   * stopping worker waits for it. A failure is logged: the containers are then the sweep's.
   */
  private tearDownLater(jobId: string, work: Promise<void>): void {
    const done = work
      .catch((err: Error) => this.deps.log.warn({ jobId, err: err.message }, 'recording the phases after the teardown failed'))
      .finally(() => this.tearingDown.delete(jobId));
    this.tearingDown.set(jobId, done);
  }

  /**
   * Leaves the job to another live worker that `can` run it (back to the delayed set,
   * attempts kept; DelayedError thrown), while one reports it can and for at most
   * PLACEMENT_WAIT_MS after the job was queued; returns when none does.
   */
  private async handOver(
    job: Job<BuildJobData>,
    token: string | undefined,
    can: (w: WorkerReport) => boolean,
    reason: string,
  ): Promise<void> {
    const others = (await this.deps.registry.live()).filter((w) => w.id !== this.id && can(w));
    if (!others.length || !token || Date.now() - job.timestamp >= PLACEMENT_WAIT_MS) return;
    this.deps.log.info({ jobId: job.id, reason }, 'leaving this job to a worker that can run it');
    await job.moveToDelayed(Date.now() + 2_000, token);
    throw new DelayedError();
  }

  private async heartbeat(first: boolean): Promise<void> {
    const { config, imageEngine, log } = this.deps;
    if (imageEngine) {
      try {
        this.images = (await listToolchainImages(imageEngine, config.imageRepo)).images;
        if (this.dockerError) log.info('Docker engine reachable again');
        this.dockerError = undefined;
        this.checkLoads();
      } catch (err) {
        if (!this.dockerError) log.warn({ err: (err as Error).message }, 'Docker engine unreachable');
        this.dockerError = (err as Error).message;
      }
    }
    await this.report(first);
  }

  /** Writes this worker's report (a failure is ignored after the first: the next heartbeat writes it again). */
  private async report(first: boolean): Promise<void> {
    const { config, registry } = this.deps;
    if (this.stopping) return;
    try {
      await registry.report({
        id: this.id,
        hostname: os.hostname(),
        concurrency: config.workerConcurrency,
        startedAt: this.startedAt,
        reportedAt: new Date().toISOString(),
        dockerReachable: !this.dockerError,
        ...(this.dockerError ? { dockerError: this.dockerError } : {}),
        imageRepo: config.imageRepo,
        images: this.images,
        load: this.loads.summary(this.images),
      });
    } catch (err) {
      if (first) throw err;
    }
  }

  /** Cancels the running jobs whose build was canceled, as the pub/sub message would have. */
  private async checkCanceled(): Promise<void> {
    for (const [jobId, buildId] of [...this.activeJobs]) {
      const state = await this.deps.repo.get(buildId);
      if ((!state || state.canceledAt) && this.worker?.cancelJob(jobId, 'canceled'))
        this.deps.log.info({ jobId }, 'cancel found in the build state');
    }
  }

  /** Finds out, one image at a time in the background, what this worker can load for images it has not checked. */
  private checkLoads(): void {
    if (this.checkingLoads || this.stopping) return;
    const images = [...this.images];
    this.checkingLoads = (async () => {
      for (const i of images) {
        if (this.stopping) return;
        const c = await this.loads.of(i).catch(() => undefined);
        if (c && 'unavailable' in c)
          this.deps.log.warn(
            { image: i.image, reason: c.unavailable },
            'the loading probe cannot run for this image here; its targets will be reported verify "skipped"',
          );
      }
    })().finally(() => {
      this.checkingLoads = undefined;
    });
  }

  /**
   * Removes build containers (and disk holders and disk volumes) whose worker is gone, and
   * this worker's own of jobs it is no longer running (a teardown that failed earlier).
   */
  async sweep(): Promise<number> {
    const live = new Set((await this.deps.registry.live()).map((w) => w.id));
    live.add(this.id);
    const self = {
      id: this.id,
      live,
      jobs: new Set([...this.activeJobs.keys(), ...this.tearingDown.keys()]),
      checking: this.loads.checking,
    };
    const orphan = (labels: Record<string, string>) => isOrphan(labels, 'build', self);
    let removed = 0;
    for (const c of await this.containersOf({}, CONTAINER_ROLES)) {
      if (!orphan(c.labels)) continue;
      await this.deps.runtime.destroy({ id: c.id }).catch(() => undefined);
      removed++;
      this.deps.log.info(
        { container: c.id.slice(0, 12), role: c.role, job: c.labels[LABELS.job], owner: c.labels[LABELS.worker] },
        'removed an orphaned container',
      );
    }
    // Their disks (a volume still mounted by a container is left for the next sweep).
    for (const d of await this.deps.runtime.listDisks({ [LABELS.instance]: this.instanceId })) {
      if (orphan(d.labels)) await this.deps.runtime.removeDisk(d.name).catch(() => undefined);
    }
    // Capability checks of workers that are gone, and this worker's own when none is running
    // (one whose removal failed, e.g. while the engine restarted).
    for (const c of await this.containersOf({}, ['check'])) {
      if (!isOrphan(c.labels, 'check', self)) continue;
      await this.deps.runtime.destroy({ id: c.id }).catch(() => undefined);
      removed++;
    }
    return removed;
  }

  private async removeContainers(labels: Record<string, string>): Promise<void> {
    for (const c of await this.containersOf(labels, CONTAINER_ROLES)) {
      await this.deps.runtime.destroy({ id: c.id });
      this.deps.log.info({ container: c.id.slice(0, 12), role: c.role }, 'removed a container left by an earlier run of this job');
    }
    for (const d of await this.deps.runtime.listDisks({ [LABELS.instance]: this.instanceId, ...labels }))
      await this.deps.runtime.removeDisk(d.name);
  }
}
