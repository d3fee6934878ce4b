import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { withScripts } from '../redis/redis-scripts.js';
import type Docker from 'dockerode';
import type { BuildRepository } from '../builds/build-repository.js';
import type { Config } from '../config.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { buildImages, IMAGES_DIR, type BuildProgress } from '../images/image-builder.js';
import { listToolchainImages, resolveGoVersion, type ToolchainImage } from '../images/image-catalog.js';
import { minorOf, requireGoVersion } from '../images/go-version.js';
import { imageTag } from '../images/image-tags.js';
import type { Logger } from '../log.js';
import type { CancelChannel } from '../queue/cancel-channel.js';
import { BuildQueue, DEPENDENCIES_JOB, enqueueStage, IMAGES_JOB, jobPart, type BuildJobData } from '../queue/build-queue.js';
import type { WorkerRegistry, WorkerReport } from '../queue/worker-registry.js';
import { TenantRunningLimits } from '../queue/tenant-running.js';
import type { BuildRuntime } from '../runtime/build-runtime.js';
import type { WorkerBlobs } from '../store/blob-store.js';
import { TARGET_IDS, type TargetId } from '../targets.js';
import { withDeadline } from '../deadline.js';
import { jobIdOf } from '../queue/job-ids.js';
import { plan, planDependencies, planVerify } from './plan.js';
import { PROFILE_SYMBOLS } from '../verify/load-probe.js';
import { runCommandInImage } from '../runtime/run-command.js';
import type { BuildRecord, PhaseTimings } from '../builds/build-document.js';
import { nextStage } from '../builds/next-stage.js';
import type { PackageFingerprints } from '../verify/package-fingerprints.js';
import { LoadCapabilities } from './load-capabilities.js';
import { LABELS } from '../runtime/build-spec.js';
import type { BuildStep, Step } from './steps.js';
import { runDependencyPhase } from './dependency-phase.js';
import { runTargetBuild, type HostFingerprints, type TargetOutcome } from './target-build.js';
import { exportsOf, verifyPolicy, workOverridesOf } from './host-work.js';
import { classifyFailure, phaseErrorOf } from './failure.js';

/** How often running jobs are checked against their builds' state for a cancel pub/sub did not bring. */
const CANCEL_CHECK_MS = 3_000;

/** How long a build may wait on another worker's image build (images on demand). */
const IMAGE_WAIT_MS = 45 * 60_000;
/** The fleet-wide lock of one Go minor's image build; renewed while the build runs. */
const IMAGE_LOCK_MS = 5 * 60_000;

/** How long a verify=loaded target may wait for a worker that can load it. */
const PLACEMENT_WAIT_MS = 10 * 60_000;

export interface BuildWorkerDeps {
  config: Config;
  /** BullMQ's connection (maxRetriesPerRequest: null). */
  connection: Redis;
  /** A second connection, put in subscriber mode for cancel requests. */
  subscriber: Redis;
  repo: BuildRepository;
  registry: WorkerRegistry;
  cancel: CancelChannel;
  runtime: BuildRuntime;
  store: WorkerBlobs;
  /** The engine whose images this worker reports; absent with a fake runtime. */
  docker?: Docker;
  /** Images to report when there is no engine to ask (fake runtimes in tests). */
  staticImages?: ToolchainImage[];
  /** What this worker can load per image; by default found out on its engine (tests script it). */
  loads?: LoadCapabilities;
  log: Logger;
  /** Observers for metrics. */
  onTargetFinished?: (outcome: { status: string; durationMs: number; target: string; phases?: PhaseTimings }) => void;
  onModules?: (counts: { downloaded: number; cached: number }) => void;
}

/**
 * One worker process: takes target jobs (as many at once as configured), runs each in a
 * container, records the result. Delivery is at-least-once: a job whose worker died is
 * taken again by BullMQ's stalled-job check, and the new run first removes what the old
 * one left behind. Containers of workers that are no longer alive are swept periodically.
 */
/** The roles of the containers a job makes: its builds and probes, their disks' holders, its cache upkeep. */
const CONTAINER_ROLES = ['build', 'disk', 'cache'] as const;

export class BuildWorker {
  readonly id = `${os.hostname().replace(/[^a-z0-9-]/gi, '').toLowerCase() || 'worker'}-${process.pid}-${randomBytes(3).toString('hex')}`;
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
    const docker = deps.docker;
    // Check containers carry this worker's labels: one left by a worker that died is swept.
    const checkLabels = () => ({ [LABELS.worker]: this.id, [LABELS.instance]: this.instanceId });
    this.loads = deps.loads ?? new LoadCapabilities(docker ? (image, cmd) => runCommandInImage(docker, image, cmd, { timeoutMs: 60_000, labels: checkLabels() }) : undefined, deps.config.build.probe386);
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
    this.worker = new Worker<BuildJobData>(config.queueName, (job, token, signal) => {
      const s = signal ?? new AbortController().signal;
      // Making images holds no tenant's running place: the build is not running yet.
      if (job.name === IMAGES_JOB) return this.processImages(job);
      return running.run(job, token, () => (job.name === DEPENDENCIES_JOB ? this.processDependencies(job, s) : this.process(job, s, token)));
    }, {
      connection: this.deps.connection,
      concurrency: config.workerConcurrency,
      // A dead worker's job is taken again after its lock expires (at most ~lockDuration).
      lockDuration: 20_000,
      stalledInterval: 10_000,
      maxStalledCount: 5,
      autorun: true,
    });
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
    if (this.queue) await withDeadline(this.queue.close().catch(() => undefined), 2_000, undefined);
    // Each teardown has its own deadline per container; what one leaves, removeOwn removes.
    await withDeadline(Promise.allSettled(this.tearingDown.values()), 65_000, undefined);
    // Its jobs have ended: whatever of its own is still on the engine is a leftover (a removal
    // that failed while the engine restarted, say).
    await withDeadline(this.removeOwn().catch(() => undefined), 15_000, undefined);
    await withDeadline(this.deps.registry.remove(this.id).catch(() => undefined), 2_000, undefined);
  }

  /** Removes every container and disk of this worker (once it runs no job and no check). */
  private async removeOwn(): Promise<void> {
    const mine = { [LABELS.worker]: this.id };
    for (const c of await this.containersOf(mine, [...CONTAINER_ROLES, 'check'])) {
      await this.deps.runtime.destroy({ id: c.id }).catch(() => undefined);
      this.deps.log.info({ container: c.id.slice(0, 12), role: c.role }, 'removed a container this worker had left');
    }
    for (const d of await this.deps.runtime.listDisks({ [LABELS.instance]: this.instanceId, ...mine })) await this.deps.runtime.removeDisk(d.name).catch(() => undefined);
  }

  /** This installation's containers carrying `labels`, of any of `roles`, each with its role. */
  private async containersOf(labels: Record<string, string>, roles: readonly string[]): Promise<{ id: string; labels: Record<string, string>; role: string }[]> {
    const found = [];
    for (const role of roles) {
      for (const c of await this.deps.runtime.list({ ...labels, [LABELS.instance]: this.instanceId, [LABELS.role]: role })) found.push({ ...c, role });
    }
    return found;
  }

  private async process(job: Job<BuildJobData>, signal: AbortSignal, token?: string): Promise<void> {
    const { repo, config, log } = this.deps;
    const { buildId } = job.data;
    const target = jobPart(job);
    if (target === 'deps' || target === 'images') throw new Error(`not a target job: ${job.name}`);
    const jobId = jobIdOf(buildId, target);
    const state = await repo.get(buildId);
    if (!state) {
      log.warn({ jobId }, 'build no longer exists; dropping its job');
      return;
    }
    const current = state.targets[target];
    if (state.canceledAt || current?.status === 'canceled') return;

    const step = plan(state.record, target, config, { workerId: this.id, instanceId: this.instanceId });
    // Without the target's image here, a worker that reports it builds the target (docs/deployment.md).
    const image = step.container.image;
    if (!this.images.some((i) => i.image === image)) await this.handOver(job, token, (w) => w.images.some((i) => i.image === image), `no image ${image} on this worker`);
    const { pipeline, host, probeUnavailable } = await this.pipelineOf(state.record, step);
    if (probeUnavailable && state.record.verifyMode === 'loaded') {
      await this.placeElsewhere(job, token, step, probeUnavailable);
      return;
    }

    this.activeJobs.set(jobId, buildId);
    const appendLog = (text: string) => repo.appendLog(buildId, target, text);
    try {
      // At-least-once: an earlier run of this job may have died and left its container.
      await this.removeContainers({ [LABELS.job]: jobId });
      const attempt = job.attemptsMade + 1;
      const startedAt = new Date();
      const rerun = current?.status === 'running';
      // A cancel that came after the build was read leaves the target canceled: then nothing runs.
      if (!(await repo.patchTarget(buildId, target, { status: 'running', attempt, startedAt: startedAt.toISOString(), error: null, finishedAt: null, durationMs: null, phases: null }))) {
        log.info({ jobId }, 'canceled before it started');
        return;
      }
      if (attempt > 1 || rerun) await appendLog(`[plugforge] ${rerun ? 'taken over after a worker stopped; ' : ''}attempt ${attempt} of ${config.build.attempts}\n`);

      try {
        const run = { sourceSha256: state.record.source.sha256, mode: state.record.mode, overrides: workOverridesOf(state), ...exportsOf(state.record), ...(host ? { host } : {}), ...(probeUnavailable ? { probeUnavailable } : {}) };
        const queueWait = Math.max(0, (job.processedOn ?? startedAt.getTime()) - job.timestamp);
        let durationMs = 0;
        let status = '';
        // Recorded as soon as it is known; the containers are removed after, and the phases
        // then completed with that teardown.
        const record = async (ended: TargetOutcome) => {
          const outcome = verifyPolicy(state.record, ended);
          durationMs = Date.now() - startedAt.getTime();
          status = outcome.status;
          const patch = { status: outcome.status, finishedAt: new Date().toISOString(), durationMs, error: outcome.error ?? null, artifact: outcome.artifact ?? null, verify: outcome.verify ?? null, phases: { queueWait, ...outcome.phases } };
          await repo.patchTarget(buildId, target, patch, { force: outcome.status === 'canceled' });
          log.info({ jobId, status: outcome.status, durationMs, code: outcome.error?.code }, 'target finished');
        };
        let teardown: Promise<void> | undefined;
        const outcome = await runTargetBuild({ runtime: this.deps.runtime, store: this.deps.store, appendLog }, pipeline, run, signal, record, (t) => (teardown = t));
        // The phases are complete once the containers are gone; the slot is free before that.
        const finished = async () => {
          const phases: PhaseTimings = { queueWait, ...outcome.phases };
          await repo.patchTarget(buildId, target, { phases }, { force: outcome.status === 'canceled' });
          this.deps.onTargetFinished?.({ status, durationMs, target, phases });
        };
        if (teardown) this.tearDownLater(jobId, teardown.then(finished));
        else await finished();
      } catch (err) {
        await this.attemptFailed(job, target, attempt, startedAt, err);
      }
    } finally {
      this.activeJobs.delete(jobId);
    }
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
   * A target's attempt that threw (the machinery's failure: engine, store): back to the
   * queue (rethrown, for BullMQ to retry) while attempts remain, else failed for good.
   */
  private async attemptFailed(job: Job<BuildJobData>, target: TargetId, attempt: number, startedAt: Date, err: unknown): Promise<void> {
    const { buildId } = job.data;
    const { error, final, recorded } = classifyFailure(err, attempt, job.opts.attempts ?? 1);
    this.deps.log.warn({ jobId: jobIdOf(buildId, target), attempt, final, err: error.message }, 'target attempt failed');
    if (!final) {
      await this.deps.repo.patchTarget(buildId, target, { status: 'queued', error: recorded });
      throw error;
    }
    const durationMs = Date.now() - startedAt.getTime();
    await this.deps.repo.patchTarget(buildId, target, { status: 'failed', finishedAt: new Date().toISOString(), durationMs, error: recorded });
    this.deps.onTargetFinished?.({ status: 'failed', durationMs, target });
  }

  /**
   * Images on demand (docs/decisions.md): makes the builder images of the build's Go release
   * unless they exist, then gives the build that exact release and enqueues the rest of it.
   * When the image build fails, every target fails with the image builder's message.
   */
  private async processImages(job: Job<BuildJobData>): Promise<void> {
    const { repo, config, log, docker } = this.deps;
    const { buildId } = job.data;
    const jobId = jobIdOf(buildId, 'images');
    const state = await repo.get(buildId);
    if (!state || state.canceledAt || !state.images) return;
    this.activeJobs.set(jobId, buildId);
    const appendLog = (text: string) => repo.appendLog(buildId, 'images', text);
    const requested = state.images.go;
    const targets = state.record.targetIds;
    const startedAt = Date.now();
    const ended = () => ({ finishedAt: new Date().toISOString(), durationMs: Date.now() - startedAt });
    try {
      await repo.patchImages(buildId, { status: 'running', startedAt: new Date(startedAt).toISOString(), error: null });
      let made: { go: string; built: boolean };
      try {
        if (!docker) throw new PlugforgeError('docker_unavailable', 'This worker has no Docker engine to build images with.');
        made = await this.ensureImages(docker, requested, targets, appendLog, { [LABELS.worker]: this.id, [LABELS.instance]: this.instanceId, [LABELS.job]: jobId });
      } catch (err) {
        // One attempt (queue/build-queue.ts): a failed apt step does not get better by retrying.
        const { error: e } = classifyFailure(err, 1, 1, (u) => new PlugforgeError('image_build_failed', (u as Error).message));
        const end = ended();
        await appendLog(`[plugforge] the builder images of Go ${requested} could not be made: ${e.message}\n`);
        await repo.patchImages(buildId, { status: 'failed', ...end, error: { code: e.code, message: e.message } });
        for (const t of targets) await repo.patchTarget(buildId, t, { status: 'failed', finishedAt: end.finishedAt, error: phaseErrorOf(`Builder images of Go ${requested}`, { code: e.code, message: e.message }) });
        log.warn({ jobId, go: requested, err: e.message }, 'images on demand failed');
        return;
      }
      await repo.setToolchain(buildId, made.go, (t) => imageTag(config.imageRepo, made.go, t));
      await repo.patchImages(buildId, { status: 'succeeded', ...ended(), built: made.built });
      const now = await repo.get(buildId);
      if (!now || now.canceledAt) return;
      await enqueueStage(this.queue!, buildId, targets, nextStage(now.record, { imagesReady: true, dependenciesDone: false }));
      log.info({ jobId, go: made.go, built: made.built }, 'images ready; build enqueued');
    } finally {
      this.activeJobs.delete(jobId);
    }
  }

  /**
   * The exact release whose images exist for `targets`, making them first when none do. One
   * image build per Go minor runs across the fleet (a Redis lock, renewed while it runs);
   * the others wait for its images. Like `plugforge images build`, on this worker's engine.
   */
  private async ensureImages(docker: Docker, requested: string, targets: readonly TargetId[], appendLog: (text: string) => Promise<void>, labels: Record<string, string>): Promise<{ go: string; built: boolean }> {
    const { config, connection } = this.deps;
    const key = `pf:${config.queueName}:image-build:${minorOf(requireGoVersion(requested))}`;
    const token = randomBytes(8).toString('hex');
    const until = Date.now() + IMAGE_WAIT_MS;
    const exactOf = async (): Promise<string | undefined> => {
      const catalog = await listToolchainImages(docker, config.imageRepo);
      this.images = catalog.images;
      try {
        return resolveGoVersion(catalog, requested, targets);
      } catch (err) {
        if (err instanceof PlugforgeError && err.code === 'go_version_unavailable') return undefined;
        throw err;
      }
    };
    let waiting = false;
    for (;;) {
      const exact = await exactOf();
      if (exact) return { go: exact, built: false };
      if ((await connection.set(key, token, 'PX', IMAGE_LOCK_MS, 'NX')) === 'OK') {
        const renew = setInterval(() => void connection.pexpire(key, IMAGE_LOCK_MS).catch(() => undefined), IMAGE_LOCK_MS / 3);
        try {
          await appendLog(`[plugforge] no builder images of Go ${requested} for ${targets.join(', ')} here yet: building them (images on demand, a few minutes)\n`);
          const request = { go: requested, targets, repo: config.imageRepo, imagesDir: IMAGES_DIR, toolchain: config.images.toolchain, floor: config.images.floor, labels };
          const result = await buildImages(docker, request, logProgress(appendLog));
          await appendLog(`[plugforge] builder images of Go ${result.go} ready: ${result.images.map((i) => `${i.image} ${i.outcome}`).join(', ')}\n`);
          const made = await exactOf();
          if (!made) throw new PlugforgeError('image_build_failed', `The images of Go ${result.go} were built but do not answer for Go ${requested}.`);
          return { go: made, built: true };
        } finally {
          clearInterval(renew);
          await withScripts(connection).pfReleaseLock(key, token).catch(() => undefined);
        }
      }
      if (!waiting) await appendLog(`[plugforge] another worker is building the images of Go ${requested}; waiting for them\n`);
      waiting = true;
      if (Date.now() > until) throw new PlugforgeError('image_build_timeout', `Waited ${IMAGE_WAIT_MS / 60_000} min for another worker's image build of Go ${requested}; build them with: plugforge images build --go ${requested}`);
      await new Promise((r) => setTimeout(r, 3_000));
    }
  }

  /**
   * The dependency phase of a build: downloads its modules once, then enqueues its targets.
   * A final failure fails every target with the phase's error (which names the module).
   */
  private async processDependencies(job: Job<BuildJobData>, signal: AbortSignal): Promise<void> {
    const { repo, config, log } = this.deps;
    const { buildId } = job.data;
    const jobId = jobIdOf(buildId, 'deps');
    const state = await repo.get(buildId);
    if (!state || state.canceledAt) return;
    this.activeJobs.set(jobId, buildId);
    const appendLog = (text: string) => repo.appendLog(buildId, 'deps', text);
    const startedAt = new Date();
    const attempt = job.attemptsMade + 1;
    try {
      await this.removeContainers({ [LABELS.job]: jobId });
      await repo.patchDependencies(buildId, { status: 'running', startedAt: startedAt.toISOString(), error: null });
      if (attempt > 1) await appendLog(`[plugforge] attempt ${attempt} of ${config.build.attempts}\n`);
      const step = planDependencies(state.record, config, { workerId: this.id, instanceId: this.instanceId });
      const toolchains = [...new Set(this.images.map((i) => i.go))];
      let outcome;
      try {
        outcome = await runDependencyPhase({ runtime: this.deps.runtime, store: this.deps.store, appendLog }, step, state.record.source.sha256, signal, toolchains, state.record.hostMatch);
      } catch (err) {
        const { error, final, recorded } = classifyFailure(err, attempt, job.opts.attempts ?? 1);
        if (!final) {
          await repo.patchDependencies(buildId, { status: 'queued', error: recorded });
          throw error;
        }
        outcome = { status: 'failed' as const, error: recorded };
      }
      const finishedAt = new Date().toISOString();
      const durationMs = Date.now() - startedAt.getTime();
      await repo.patchDependencies(buildId, {
        status: outcome.status,
        finishedAt,
        durationMs,
        modules: outcome.modules?.length ?? null,
        downloaded: outcome.downloaded?.length ?? null,
        goSumAdded: ('goSumAdded' in outcome ? outcome.goSumAdded : undefined) ?? null,
        error: outcome.error ?? null,
      });
      this.deps.onModules?.({ downloaded: outcome.downloaded?.length ?? 0, cached: (outcome.modules?.length ?? 0) - (outcome.downloaded?.length ?? 0) });
      if (outcome.status === 'succeeded') {
        const ended = Boolean((await repo.get(buildId))?.canceledAt);
        await enqueueStage(this.queue!, buildId, state.record.targetIds, nextStage(state.record, { imagesReady: true, dependenciesDone: true, ended }));
        return;
      }
      if (outcome.status === 'failed' && outcome.error) {
        for (const t of state.record.targetIds) await repo.patchTarget(buildId, t, { status: 'failed', finishedAt, error: phaseErrorOf('Dependencies', outcome.error) });
      }
      log.info({ jobId, status: outcome.status, code: outcome.error?.code }, 'dependency phase finished');
    } finally {
      this.activeJobs.delete(jobId);
    }
  }

  /**
   * A target job's pipeline: its build step and, for a plugin, the verify step of the
   * loading probe under the loader this worker found for the image (or, where it has none,
   * why not); with the host binary given for the target's architecture, whose package
   * fingerprints the artifact is checked against. Executables get the ELF check alone.
   */
  private async pipelineOf(record: BuildRecord, step: BuildStep): Promise<{ pipeline: Step[]; host?: HostFingerprints; probeUnavailable?: string }> {
    if (record.mode !== 'plugin') return { pipeline: [step] };
    const host = await this.hostFingerprintsOf(record, step.target);
    const image = this.images.find((i) => i.image === step.container.image);
    const capability = await this.loads.of({ image: step.container.image, target: step.target, ...(image ? { id: image.id } : {}) });
    if ('unavailable' in capability) return { pipeline: [step], ...(host ? { host } : {}), probeUnavailable: capability.unavailable };
    // The probe looks up the profile's symbols, as the host does at start-up.
    return { pipeline: [step, planVerify(step, PROFILE_SYMBOLS[record.host], capability.loader)], ...(host ? { host } : {}) };
  }

  private async hostFingerprintsOf(record: BuildRecord, target: BuildStep['target']): Promise<HostFingerprints | undefined> {
    const ref = record.hostBinaries?.find((b) => b.target === target);
    if (!ref) return undefined;
    const blob = await this.deps.store.open(ref.fingerprintsBlob);
    const chunks: Buffer[] = [];
    for await (const chunk of blob.stream) chunks.push(chunk as Buffer);
    return { sha256: ref.sha256, go: ref.go, fingerprints: JSON.parse(Buffer.concat(chunks).toString('utf8')) as PackageFingerprints };
  }

  /**
   * verify=loaded, and this worker cannot load the target: hand the job to a worker that
   * reports it can (back to the delayed set, attempts kept), or, when none does (or after
   * PLACEMENT_WAIT_MS), fail the target with a code that names the worker's limitation.
   */
  private async placeElsewhere(job: Job<BuildJobData>, token: string | undefined, step: BuildStep, reason: string): Promise<void> {
    await this.handOver(job, token, (w) => Boolean(w.load?.[step.container.image]?.how), reason);
    const message = `verify=loaded: no worker could load this target's artifact (this one: ${reason}). Add a worker that can (see /readyz "load"), or build with verify=strict, which reports such a target as verify.status "skipped".`;
    await this.deps.repo.patchTarget(job.data.buildId, step.target, { status: 'failed', finishedAt: new Date().toISOString(), error: { code: 'probe_unavailable', message } });
    this.deps.onTargetFinished?.({ status: 'failed', durationMs: 0, target: step.target });
  }

  /**
   * Leaves the job to another live worker that `can` run it (back to the delayed set,
   * attempts kept; DelayedError thrown), while one reports it can and for at most
   * PLACEMENT_WAIT_MS after the job was queued; returns when none does.
   */
  private async handOver(job: Job<BuildJobData>, token: string | undefined, can: (w: WorkerReport) => boolean, reason: string): Promise<void> {
    const others = (await this.deps.registry.live()).filter((w) => w.id !== this.id && can(w));
    if (!others.length || !token || Date.now() - job.timestamp >= PLACEMENT_WAIT_MS) return;
    this.deps.log.info({ jobId: job.id, reason }, 'leaving this job to a worker that can run it');
    await job.moveToDelayed(Date.now() + 2_000, token);
    throw new DelayedError();
  }

  private async heartbeat(first: boolean): Promise<void> {
    const { config, docker, log } = this.deps;
    if (docker) {
      try {
        this.images = (await listToolchainImages(docker, config.imageRepo)).images;
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
      if ((!state || state.canceledAt) && this.worker?.cancelJob(jobId, 'canceled')) this.deps.log.info({ jobId }, 'cancel found in the build state');
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
        if (c && 'unavailable' in c) this.deps.log.warn({ image: i.image, reason: c.unavailable }, 'the loading probe cannot run for this image here; its targets will be reported verify "skipped"');
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
    const orphan = (labels: Record<string, string>) => {
      const owner = labels[LABELS.worker] ?? '';
      const job = labels[LABELS.job] ?? '';
      return !live.has(owner) || (owner === this.id && !this.activeJobs.has(job) && !this.tearingDown.has(job));
    };
    let removed = 0;
    for (const c of await this.containersOf({}, CONTAINER_ROLES)) {
      if (!orphan(c.labels)) continue;
      await this.deps.runtime.destroy({ id: c.id }).catch(() => undefined);
      removed++;
      this.deps.log.info({ container: c.id.slice(0, 12), role: c.role, job: c.labels[LABELS.job], owner: c.labels[LABELS.worker] }, 'removed an orphaned container');
    }
    // Their disks (a volume still mounted by a container is left for the next sweep).
    for (const d of await this.deps.runtime.listDisks({ [LABELS.instance]: this.instanceId })) {
      if (orphan(d.labels)) await this.deps.runtime.removeDisk(d.name).catch(() => undefined);
    }
    // Capability checks of workers that are gone, and this worker's own when none is running
    // (one whose removal failed, e.g. while the engine restarted).
    for (const c of await this.containersOf({}, ['check'])) {
      const owner = c.labels[LABELS.worker] ?? '';
      if (live.has(owner) && (owner !== this.id || this.loads.checking)) continue;
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
    for (const d of await this.deps.runtime.listDisks({ [LABELS.instance]: this.instanceId, ...labels })) await this.deps.runtime.removeDisk(d.name);
  }
}

/** An image build's progress as lines of the build's "images" log: each step, each image's end. */
function logProgress(appendLog: (text: string) => Promise<void>): BuildProgress {
  const line = (task: string, message: string) => void appendLog(`[images] ${task}: ${message}\n`).catch(() => undefined);
  return {
    update: (task, message) => {
      if (/^Step \d+\/\d+ :/.test(message)) line(task, message);
    },
    log: line,
    done: line,
    fail: line,
  };
}
