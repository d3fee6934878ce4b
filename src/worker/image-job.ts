import { randomBytes } from 'node:crypto';
import type { Job } from 'bullmq';
import { nextStage } from '../builds/next-stage.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { buildImages, IMAGES_DIR, type BuildProgress } from '../images/image-builder.js';
import { listToolchainImages, resolveGoVersion } from '../images/image-catalog.js';
import { minorOf, requireGoVersion } from '../images/go-version.js';
import { imageTag } from '../images/image-tags.js';
import { enqueueStage, type BuildJobData } from '../queue/build-queue.js';
import { jobIdOf } from '../queue/job-ids.js';
import { withScripts } from '../redis/redis-scripts.js';
import { LABELS } from '../runtime/build-spec.js';
import type { ImageEngine } from '../runtime/image-engine.js';
import { imageTargetsOf, TARGETS, type TargetId } from '../contract/targets.js';
import { classifyFailure, phaseErrorOf } from './failure.js';
import type { JobContext } from './job-context.js';
import { toolchainFetchOf } from '../config.js';

/** How long a build may wait on another worker's image build (images on demand). */
const IMAGE_WAIT_MS = 45 * 60_000;
/** The fleet-wide lock of one Go minor's image build; renewed while the build runs. */
const IMAGE_LOCK_MS = 5 * 60_000;

/**
 * Images on demand (docs/decisions.md): makes the builder images of the build's Go release
 * unless they exist, then gives the build that exact release and enqueues the rest of it.
 * When the image build fails, every target fails with the image builder's message.
 */
export async function runImageJob(ctx: JobContext, job: Job<BuildJobData>): Promise<void> {
  const { repo, config, log, imageEngine } = ctx.deps;
  const { buildId } = job.data;
  const jobId = jobIdOf(buildId, 'images');
  const state = await repo.get(buildId);
  if (!state || state.canceledAt || !state.images) return;
  ctx.running(jobId, buildId);
  const appendLog = (text: string) => repo.appendLog(buildId, 'images', text);
  const requested = state.images.go;
  const targets = state.record.targetIds;
  const startedAt = Date.now();
  const ended = () => ({ finishedAt: new Date().toISOString(), durationMs: Date.now() - startedAt });
  try {
    await repo.patchImages(buildId, { status: 'running', startedAt: new Date(startedAt).toISOString(), error: null });
    let made: { go: string; built: boolean };
    try {
      if (!imageEngine) throw new PlugforgeError('docker_unavailable', 'This worker has no Docker engine to build images with.');
      made = await ensureImages(ctx, imageEngine, requested, targets, appendLog, {
        [LABELS.worker]: ctx.workerId,
        [LABELS.instance]: ctx.instanceId,
        [LABELS.job]: jobId,
      });
    } catch (err) {
      // Its one attempt: a failed apt step does not get better by retrying.
      const { error: e } = classifyFailure(err, 1, 1, (u) => new PlugforgeError('image_build_failed', (u as Error).message));
      const end = ended();
      await appendLog(`[plugforge] the builder images of Go ${requested} could not be made: ${e.message}\n`);
      await repo.patchImages(buildId, { status: 'failed', ...end, error: { code: e.code, message: e.message } });
      for (const t of targets)
        await repo.patchTarget(buildId, t, {
          status: 'failed',
          finishedAt: end.finishedAt,
          error: phaseErrorOf(`Builder images of Go ${requested}`, { code: e.code, message: e.message }),
        });
      log.warn({ jobId, go: requested, err: e.message }, 'images on demand failed');
      return;
    }
    await repo.setToolchain(buildId, made.go, (t) => imageTag(config.imageRepo, made.go, TARGETS[t].image));
    await repo.patchImages(buildId, { status: 'succeeded', ...ended(), built: made.built });
    const now = await repo.get(buildId);
    if (!now || now.canceledAt) return;
    await enqueueStage(ctx.queue, buildId, targets, nextStage(now.record, { imagesReady: true, dependenciesDone: false }));
    log.info({ jobId, go: made.go, built: made.built }, 'images ready; build enqueued');
  } finally {
    ctx.done(jobId);
  }
}

/**
 * The exact release whose images exist for `targets`, making them first when none do. One
 * image build per Go minor runs across the fleet (a Redis lock, renewed while it runs);
 * the others wait for its images. Like `plugforge images build`, on this worker's engine.
 */
async function ensureImages(
  ctx: JobContext,
  engine: ImageEngine,
  requested: string,
  targets: readonly TargetId[],
  appendLog: (text: string) => Promise<void>,
  labels: Record<string, string>,
): Promise<{ go: string; built: boolean }> {
  const { config, connection } = ctx.deps;
  const key = `pf:${config.queueName}:image-build:${minorOf(requireGoVersion(requested))}`;
  const token = randomBytes(8).toString('hex');
  const until = Date.now() + IMAGE_WAIT_MS;
  const exactOf = async (): Promise<string | undefined> => {
    const catalog = await listToolchainImages(engine, config.imageRepo);
    ctx.setImages(catalog.images);
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
        await appendLog(
          `[plugforge] no builder images of Go ${requested} for ${targets.join(', ')} here yet: building them (images on demand, a few minutes)\n`,
        );
        const request = {
          go: requested,
          targets: imageTargetsOf(targets),
          repo: config.imageRepo,
          imagesDir: IMAGES_DIR,
          toolchain: toolchainFetchOf(config),
          floor: config.images.floor,
          labels,
        };
        const result = await buildImages(engine, request, logProgress(appendLog));
        await appendLog(
          `[plugforge] builder images of Go ${result.go} ready: ${result.images.map((i) => `${i.image} ${i.outcome}`).join(', ')}\n`,
        );
        const made = await exactOf();
        if (!made)
          throw new PlugforgeError('image_build_failed', `The images of Go ${result.go} were built but do not answer for Go ${requested}.`);
        return { go: made, built: true };
      } finally {
        clearInterval(renew);
        await withScripts(connection)
          .pfReleaseLock(key, token)
          .catch(() => undefined);
      }
    }
    if (!waiting) await appendLog(`[plugforge] another worker is building the images of Go ${requested}; waiting for them\n`);
    waiting = true;
    if (Date.now() > until)
      throw new PlugforgeError(
        'image_build_timeout',
        `Waited ${IMAGE_WAIT_MS / 60_000} min for another worker's image build of Go ${requested}; build them with: plugforge images build --go ${requested}`,
      );
    await new Promise((r) => setTimeout(r, 3_000));
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
