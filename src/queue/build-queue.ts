import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Stage } from '../builds/next-stage.js';
import type { TargetId } from '../contract/targets.js';
import { jobIdOf } from './job-ids.js';

/** The data of one queue job: its build, and for a target job (TARGET_JOB) the target; dependency and image jobs are the build's as a whole. */
export interface BuildJobData {
  buildId: string;
  target?: TargetId;
}

export const TARGET_JOB = 'target';
/** The dependency phase of a build; when it succeeds, it enqueues the build's targets. */
export const DEPENDENCIES_JOB = 'dependencies';
/** The builder images a build waits for (images on demand); when they exist, it enqueues the rest. */
export const IMAGES_JOB = 'images';

/** Which part of its build a job is, as its id and its log name it: a target, "deps" or "images". */
export function jobPart(job: { name: string; data: BuildJobData }): TargetId | 'deps' | 'images' {
  if (job.name === DEPENDENCIES_JOB) return 'deps';
  if (job.name === IMAGES_JOB) return 'images';
  if (!job.data.target) throw new Error(`the ${job.name} job of build ${job.data.buildId} names no target`);
  return job.data.target;
}

/**
 * The queue of target jobs, one per target of each build, so a build's targets run in
 * parallel on as many workers as there are. Job ids are `<build>-<target>`: adding the
 * same target twice is a no-op.
 * Concurrency: any number of API processes and workers may enqueue at once. Idempotent:
 * every enqueue (a job id per part of a build), so a worker that dies after enqueuing and
 * is run again adds nothing twice. Errors: a Redis that cannot be reached rejects; callers
 * retry (a worker's job goes back to the queue) or undo (a submission, api/submission.ts).
 */
export class BuildQueue {
  readonly queue: Queue<BuildJobData>;

  constructor(
    connection: Redis,
    name: string,
    private readonly attempts: number,
  ) {
    this.queue = new Queue<BuildJobData>(name, { connection });
  }

  async enqueue(buildId: string, targets: readonly TargetId[]): Promise<void> {
    await this.queue.addBulk(
      targets.map((target) => ({ name: TARGET_JOB, data: { buildId, target }, opts: this.jobOptions(jobIdOf(buildId, target)) })),
    );
  }

  async enqueueDependencies(buildId: string): Promise<void> {
    await this.queue.add(DEPENDENCIES_JOB, { buildId }, this.jobOptions(jobIdOf(buildId, 'deps')));
  }

  async enqueueImages(buildId: string): Promise<void> {
    // Attempts are the image build's own: a failed apt step does not get better by retrying.
    await this.queue.add(IMAGES_JOB, { buildId }, { ...this.jobOptions(jobIdOf(buildId, 'images')), attempts: 1 });
  }

  private jobOptions(jobId: string) {
    return {
      jobId,
      attempts: this.attempts,
      backoff: { type: 'exponential' as const, delay: 2000 },
      removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    };
  }

  /** Removes the build's jobs that no worker has taken yet. Active ones are left to the cancel signal. */
  async removeWaiting(buildId: string, targets: readonly TargetId[]): Promise<void> {
    for (const target of [...targets, 'deps' as const, 'images' as const]) {
      const job = await this.queue.getJob(jobIdOf(buildId, target));
      if (!job) continue;
      const state = await job.getState();
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children') {
        await job.remove().catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/**
 * Enqueues the job of a build's `stage`, as `nextStage` decided it: its image build, its
 * dependency phase or one job per target; "done" enqueues nothing.
 */
export async function enqueueStage(
  queue: Pick<BuildQueue, 'enqueue' | 'enqueueDependencies' | 'enqueueImages'>,
  buildId: string,
  targets: readonly TargetId[],
  stage: Stage,
): Promise<void> {
  if (stage === 'images') await queue.enqueueImages(buildId);
  else if (stage === 'dependencies') await queue.enqueueDependencies(buildId);
  else if (stage === 'targets') await queue.enqueue(buildId, targets);
}
