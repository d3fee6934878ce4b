import type { Job } from 'bullmq';
import { buildSettingsOf, type BuildRecord, type BuildState, type PhaseTimings } from '../builds/build-document.js';
import { jobPart, type BuildJobData } from '../queue/build-queue.js';
import { jobIdOf } from '../queue/job-ids.js';
import { LABELS } from '../runtime/build-spec.js';
import type { TargetId } from '../contract/targets.js';
import type { PackageFingerprints } from '../verify/package-fingerprints.js';
import { PROFILE_SYMBOLS } from '../verify/load-probe.js';
import { classifyFailure } from './failure.js';
import { exportsOf, verifyPolicy, workOverridesOf } from './host-work.js';
import type { JobContext } from './job-context.js';
import { plan, planVerify } from './plan.js';
import { chooseStdSource } from './std-source.js';
import type { BuildStep, Step } from './steps.js';
import { runTargetBuild, type HostFingerprints, type ReleaseHost, type TargetOutcome } from './target-build.js';

/**
 * A target job: its pipeline planned (build, and verify where this worker can load the
 * target), run in containers, the outcome recorded; handed to another worker when this
 * one lacks the target's image, or cannot load it and the build asked for verify=loaded.
 */
export async function runTargetJob(ctx: JobContext, job: Job<BuildJobData>, signal: AbortSignal, token?: string): Promise<void> {
  const { repo, config, log } = ctx.deps;
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

  const step = plan(state.record, target, config, { workerId: ctx.workerId, instanceId: ctx.instanceId });
  // Without the target's image here, a worker that reports it builds the target (docs/deployment.md).
  const image = step.container.image;
  if (!ctx.images().some((i) => i.image === image))
    await ctx.handOver(job, token, (w) => w.images.some((i) => i.image === image), `no image ${image} on this worker`);
  const { pipeline, host, releases, probeUnavailable } = await pipelineOf(ctx, state.record, step);
  if (probeUnavailable && state.record.verifyMode === 'loaded') {
    await placeElsewhere(ctx, job, token, step, probeUnavailable);
    return;
  }

  ctx.running(jobId, buildId);
  const appendLog = (text: string) => repo.appendLog(buildId, target, text);
  try {
    const attempt = job.attemptsMade + 1;
    const startedAt = await startAttempt(ctx, state, target, attempt, appendLog);
    if (!startedAt) return;
    try {
      const planned = await withStdSource(ctx, state.record, step, { pipeline, host, releases, probeUnavailable }, appendLog);
      const { pipeline: steps, host: against, releases: among, probeUnavailable: unloadable } = planned;
      await buildAndRecord(
        ctx,
        job,
        { state, target, pipeline: steps, host: against, releases: among, probeUnavailable: unloadable, startedAt, appendLog },
        signal,
      );
    } catch (err) {
      await attemptFailed(ctx, job, target, attempt, startedAt, err);
    }
  } finally {
    ctx.done(jobId);
  }
}

/**
 * Starts an attempt: what an earlier run of the job left removed, the target marked running
 * and the attempt logged. Returns when it started, or undefined when a cancel came first.
 */
async function startAttempt(
  ctx: JobContext,
  state: BuildState,
  target: TargetId,
  attempt: number,
  appendLog: (text: string) => Promise<void>,
): Promise<Date | undefined> {
  const { repo, config, log } = ctx.deps;
  const buildId = state.record.id;
  const jobId = jobIdOf(buildId, target);
  // At-least-once: an earlier run of this job may have died and left its container.
  await ctx.removeContainers({ [LABELS.job]: jobId });
  const startedAt = new Date();
  const rerun = state.targets[target]?.status === 'running';
  // A cancel that came after the build was read leaves the target canceled: then nothing runs.
  if (
    !(await repo.patchTarget(buildId, target, {
      status: 'running',
      attempt,
      startedAt: startedAt.toISOString(),
      error: null,
      finishedAt: null,
      durationMs: null,
      phases: null,
    }))
  ) {
    log.info({ jobId }, 'canceled before it started');
    return undefined;
  }
  if (attempt > 1 || rerun)
    await appendLog(`[plugforge] ${rerun ? 'taken over after a worker stopped; ' : ''}attempt ${attempt} of ${config.build.attempts}\n`);
  return startedAt;
}

/** A started attempt of a target job: the build, the pipeline planned for it, and where its log goes. */
interface TargetAttempt {
  state: BuildState;
  target: TargetId;
  pipeline: Step[];
  host: HostFingerprints | undefined;
  releases: ReleaseHost[] | undefined;
  probeUnavailable: string | undefined;
  startedAt: Date;
  appendLog: (text: string) => Promise<void>;
}

/**
 * Runs the pipeline and records the outcome as soon as it is known; the phases are completed
 * once the containers are gone, in a teardown that may outlast the job. Throws what the
 * machinery threw.
 */
async function buildAndRecord(ctx: JobContext, job: Job<BuildJobData>, a: TargetAttempt, signal: AbortSignal): Promise<void> {
  const { repo, log } = ctx.deps;
  const { state, target, host, releases, probeUnavailable, startedAt } = a;
  const buildId = state.record.id;
  const jobId = jobIdOf(buildId, target);
  const run = {
    sourceSha256: state.record.source.sha256,
    mode: state.record.mode,
    overrides: workOverridesOf(state),
    ...exportsOf(state.record),
    ...(host ? { host } : {}),
    ...(releases ? { releases } : {}),
    ...(probeUnavailable ? { probeUnavailable } : {}),
  };
  const queueWait = Math.max(0, (job.processedOn ?? startedAt.getTime()) - job.timestamp);
  let durationMs = 0;
  let status = '';
  // Recorded as soon as it is known; the containers are removed after, and the phases
  // then completed with that teardown.
  const record = async (ended: TargetOutcome) => {
    const outcome = verifyPolicy(state.record, ended);
    durationMs = Date.now() - startedAt.getTime();
    status = outcome.status;
    const patch = {
      status: outcome.status,
      finishedAt: new Date().toISOString(),
      durationMs,
      error: outcome.error ?? null,
      artifact: outcome.artifact ?? null,
      verify: outcome.verify ?? null,
      phases: { queueWait, ...outcome.phases },
    };
    await repo.patchTarget(buildId, target, patch, { force: outcome.status === 'canceled' });
    log.info({ jobId, status: outcome.status, durationMs, code: outcome.error?.code }, 'target finished');
  };
  let teardown: Promise<void> | undefined;
  const outcome = await runTargetBuild(
    { runtime: ctx.deps.runtime, store: ctx.deps.store, appendLog: a.appendLog },
    a.pipeline,
    run,
    signal,
    record,
    (t) => (teardown = t),
  );
  // The phases are complete once the containers are gone; the slot is free before that.
  const finished = async () => {
    const phases: PhaseTimings = { queueWait, ...outcome.phases };
    await repo.patchTarget(buildId, target, { phases }, { force: outcome.status === 'canceled' });
    ctx.deps.onTargetFinished?.({ status, durationMs, target, phases });
  };
  if (teardown) ctx.tearDownLater(jobId, teardown.then(finished));
  else await finished();
}

/**
 * A target's attempt that threw (the machinery's failure: engine, store): back to the
 * queue (rethrown, for BullMQ to retry) while attempts remain, else failed for good.
 */
async function attemptFailed(
  ctx: JobContext,
  job: Job<BuildJobData>,
  target: TargetId,
  attempt: number,
  startedAt: Date,
  err: unknown,
): Promise<void> {
  const { buildId } = job.data;
  const { error, final, recorded } = classifyFailure(err, attempt, job.opts.attempts ?? 1);
  ctx.deps.log.warn({ jobId: jobIdOf(buildId, target), attempt, final, err: error.message }, 'target attempt failed');
  if (!final) {
    await ctx.deps.repo.patchTarget(buildId, target, { status: 'queued', error: recorded });
    throw error;
  }
  const durationMs = Date.now() - startedAt.getTime();
  await ctx.deps.repo.patchTarget(buildId, target, { status: 'failed', finishedAt: new Date().toISOString(), durationMs, error: recorded });
  ctx.deps.onTargetFinished?.({ status: 'failed', durationMs, target });
}

/**
 * A target job's pipeline: its build step and, for a plugin, the verify step of the
 * loading probe under the loader this worker found for the image (or, where it has none,
 * why not); with the host binary given for the target's architecture, whose package
 * fingerprints the artifact is checked against. Executables get the ELF check alone.
 */
async function pipelineOf(
  ctx: JobContext,
  record: BuildRecord,
  step: BuildStep,
): Promise<{ pipeline: Step[]; host?: HostFingerprints; releases?: ReleaseHost[]; probeUnavailable?: string }> {
  if (record.mode !== 'plugin') return { pipeline: [step] };
  const host = await hostFingerprintsOf(ctx, record.hostBinaries, step.target);
  const releases = await releaseFingerprintsOf(ctx, record, step.target);
  const image = ctx.images().find((i) => i.image === step.container.image);
  const capability = await ctx.loads.of({ image: step.container.image, target: step.target, ...(image ? { id: image.id } : {}) });
  const checks = { ...(host ? { host } : {}), ...(releases.length ? { releases } : {}) };
  if ('unavailable' in capability) return { pipeline: [step], ...checks, probeUnavailable: capability.unavailable };
  // The probe looks up the profile's symbols, as the host does at start-up.
  return { pipeline: [step, planVerify(step, PROFILE_SYMBOLS[record.host], capability.loader)], ...checks };
}

type Planned = Awaited<ReturnType<typeof pipelineOf>>;

/**
 * For a plugin checked against a host binary: the pipeline moved to the image whose
 * standard library has the host's fingerprints, when that is the release's image from the
 * other source; the choice recorded on the target (docs/images.md, "Both sources of one release").
 */
async function withStdSource(
  ctx: JobContext,
  record: BuildRecord,
  step: BuildStep,
  planned: Planned,
  appendLog: (text: string) => Promise<void>,
): Promise<Planned> {
  const against = planned.host ?? planned.releases?.[0]?.host;
  if (record.mode !== 'plugin' || !against) return planned;
  const { trimpath, tags } = buildSettingsOf(record);
  const choice = await chooseStdSource(
    ctx,
    {
      go: record.go,
      target: step.target,
      image: step.container.image,
      settings: { env: step.container.env, trimpath, tags },
      host: against.fingerprints,
      jobId: step.container.jobId,
    },
    appendLog,
  );
  if (!choice) return planned;
  await ctx.deps.repo.patchTarget(record.id, step.target, { goSource: choice, image: choice.image });
  if (choice.image === step.container.image) return planned;
  return pipelineOf(
    ctx,
    record,
    plan(record, step.target, ctx.deps.config, { workerId: ctx.workerId, instanceId: ctx.instanceId }, choice.image),
  );
}

/** A matrix group's releases with an executable of the target, each with its fingerprints (docs/hosts.md, "A matrix"). */
async function releaseFingerprintsOf(ctx: JobContext, record: BuildRecord, target: BuildStep['target']): Promise<ReleaseHost[]> {
  const out: ReleaseHost[] = [];
  for (const r of record.releaseBinaries ?? []) {
    const host = await hostFingerprintsOf(ctx, r.binaries, target);
    if (host) out.push({ release: r.release, host });
  }
  return out;
}

async function hostFingerprintsOf(
  ctx: JobContext,
  binaries: BuildRecord['hostBinaries'],
  target: BuildStep['target'],
): Promise<HostFingerprints | undefined> {
  const ref = binaries?.find((b) => b.target === target);
  if (!ref) return undefined;
  const blob = await ctx.deps.store.open(ref.fingerprintsBlob);
  const chunks: Buffer[] = [];
  for await (const chunk of blob.stream) chunks.push(chunk as Buffer);
  return { sha256: ref.sha256, go: ref.go, fingerprints: JSON.parse(Buffer.concat(chunks).toString('utf8')) as PackageFingerprints };
}

/**
 * verify=loaded, and this worker cannot load the target: hand the job to a worker that
 * reports it can (back to the delayed set, attempts kept), or, when none does (or after
 * PLACEMENT_WAIT_MS), fail the target with a code that names the worker's limitation.
 */
async function placeElsewhere(
  ctx: JobContext,
  job: Job<BuildJobData>,
  token: string | undefined,
  step: BuildStep,
  reason: string,
): Promise<void> {
  await ctx.handOver(job, token, (w) => Boolean(w.load?.[step.container.image]?.how), reason);
  const message = `verify=loaded: no worker could load this target's artifact (this one: ${reason}). Add a worker that can (see /readyz "load"), or build with verify=strict, which reports such a target as verify.status "skipped".`;
  await ctx.deps.repo.patchTarget(job.data.buildId, step.target, {
    status: 'failed',
    finishedAt: new Date().toISOString(),
    error: { code: 'probe_unavailable', message },
  });
  ctx.deps.onTargetFinished?.({ status: 'failed', durationMs: 0, target: step.target });
}
