import type { Job } from 'bullmq';
import type { BuildState } from '../builds/build-document.js';
import { nextStage } from '../builds/next-stage.js';
import { enqueueStage, type BuildJobData } from '../queue/build-queue.js';
import { jobIdOf } from '../queue/job-ids.js';
import { LABELS } from '../runtime/build-spec.js';
import { runDependencyPhase, type DependencyOutcome } from './dependency-phase.js';
import { classifyFailure, phaseErrorOf } from './failure.js';
import type { JobContext } from './job-context.js';
import { planDependencies } from './plan.js';

/**
 * The dependency phase of a build: downloads its modules once, then enqueues its targets.
 * A final failure fails every target with the phase's error (which names the module).
 */
export async function runDependencyJob(ctx: JobContext, job: Job<BuildJobData>, signal: AbortSignal): Promise<void> {
  const { repo, config, log } = ctx.deps;
  const { buildId } = job.data;
  const jobId = jobIdOf(buildId, 'deps');
  const state = await repo.get(buildId);
  if (!state || state.canceledAt) return;
  ctx.running(jobId, buildId);
  const appendLog = (text: string) => repo.appendLog(buildId, 'deps', text);
  const startedAt = new Date();
  const attempt = job.attemptsMade + 1;
  try {
    await ctx.removeContainers({ [LABELS.job]: jobId });
    await repo.patchDependencies(buildId, { status: 'running', startedAt: startedAt.toISOString(), error: null });
    if (attempt > 1) await appendLog(`[plugforge] attempt ${attempt} of ${config.build.attempts}\n`);
    const outcome = await downloadOrFail(ctx, job, state, signal, appendLog);
    await recordOutcome(ctx, state, outcome, startedAt);
    if (outcome.status !== 'succeeded') log.info({ jobId, status: outcome.status, code: outcome.error?.code }, 'dependency phase finished');
  } finally {
    ctx.done(jobId);
  }
}

/**
 * Runs the phase: its outcome, a failed one when the error is final; a retryable error puts the
 * phase back to queued and is thrown again, for BullMQ to retry the job.
 */
async function downloadOrFail(
  ctx: JobContext,
  job: Job<BuildJobData>,
  state: BuildState,
  signal: AbortSignal,
  appendLog: (text: string) => Promise<void>,
): Promise<DependencyOutcome> {
  const { repo, config } = ctx.deps;
  const attempt = job.attemptsMade + 1;
  const step = planDependencies(state.record, config, { workerId: ctx.workerId, instanceId: ctx.instanceId });
  const toolchains = [...new Set(ctx.images().map((i) => i.go))];
  try {
    return await runDependencyPhase(
      { runtime: ctx.deps.runtime, store: ctx.deps.store, appendLog },
      step,
      state.record.source.sha256,
      signal,
      toolchains,
      state.record.hostMatch,
    );
  } catch (err) {
    const { error, final, recorded } = classifyFailure(err, attempt, job.opts.attempts ?? 1);
    if (!final) {
      await repo.patchDependencies(state.record.id, { status: 'queued', error: recorded });
      throw error;
    }
    return { status: 'failed', error: recorded };
  }
}

/** Records the phase's end; after a success enqueues the targets, after a failure fails each of them with its error. */
async function recordOutcome(ctx: JobContext, state: BuildState, outcome: DependencyOutcome, startedAt: Date): Promise<void> {
  const { repo } = ctx.deps;
  const buildId = state.record.id;
  const finishedAt = new Date().toISOString();
  const durationMs = Date.now() - startedAt.getTime();
  await repo.patchDependencies(buildId, {
    status: outcome.status,
    finishedAt,
    durationMs,
    modules: outcome.modules?.length ?? null,
    downloaded: outcome.downloaded?.length ?? null,
    goSumAdded: outcome.goSumAdded ?? null,
    error: outcome.error ?? null,
  });
  ctx.deps.onModules?.({
    downloaded: outcome.downloaded?.length ?? 0,
    cached: (outcome.modules?.length ?? 0) - (outcome.downloaded?.length ?? 0),
  });
  if (outcome.status === 'succeeded') {
    const ended = Boolean((await repo.get(buildId))?.canceledAt);
    await enqueueStage(
      ctx.queue,
      buildId,
      state.record.targetIds,
      nextStage(state.record, { imagesReady: true, dependenciesDone: true, ended }),
    );
    return;
  }
  if (outcome.status === 'failed' && outcome.error) {
    for (const t of state.record.targetIds)
      await repo.patchTarget(buildId, t, { status: 'failed', finishedAt, error: phaseErrorOf('Dependencies', outcome.error) });
  }
}
