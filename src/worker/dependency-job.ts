import type { Job } from 'bullmq';
import { nextStage } from '../builds/next-stage.js';
import { enqueueStage, type BuildJobData } from '../queue/build-queue.js';
import { jobIdOf } from '../queue/job-ids.js';
import { LABELS } from '../runtime/build-spec.js';
import { runDependencyPhase } from './dependency-phase.js';
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
    const step = planDependencies(state.record, config, { workerId: ctx.workerId, instanceId: ctx.instanceId });
    const toolchains = [...new Set(ctx.images().map((i) => i.go))];
    let outcome;
    try {
      outcome = await runDependencyPhase({ runtime: ctx.deps.runtime, store: ctx.deps.store, appendLog }, step, state.record.source.sha256, signal, toolchains, state.record.hostMatch);
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
    ctx.deps.onModules?.({ downloaded: outcome.downloaded?.length ?? 0, cached: (outcome.modules?.length ?? 0) - (outcome.downloaded?.length ?? 0) });
    if (outcome.status === 'succeeded') {
      const ended = Boolean((await repo.get(buildId))?.canceledAt);
      await enqueueStage(ctx.queue, buildId, state.record.targetIds, nextStage(state.record, { imagesReady: true, dependenciesDone: true, ended }));
      return;
    }
    if (outcome.status === 'failed' && outcome.error) {
      for (const t of state.record.targetIds) await repo.patchTarget(buildId, t, { status: 'failed', finishedAt, error: phaseErrorOf('Dependencies', outcome.error) });
    }
    log.info({ jobId, status: outcome.status, code: outcome.error?.code }, 'dependency phase finished');
  } finally {
    ctx.done(jobId);
  }
}
