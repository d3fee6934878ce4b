import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { TargetId } from '../targets.js';
import { jobIdOf } from './job-ids.js';

/** The data of one queue job: one target of one build. */
export interface TargetJobData {
  buildId: string;
  target: TargetId;
}

export const TARGET_JOB = 'target';
/** The dependency phase of a build; when it succeeds, it enqueues the build's targets. */
export const DEPENDENCIES_JOB = 'dependencies';
/** The builder images a build waits for (images on demand); when they exist, it enqueues the rest. */
export const IMAGES_JOB = 'images';

/**
 * The queue of target jobs, one per target of each build, so a build's targets run in
 * parallel on as many workers as there are. Job ids are `<build>-<target>`: adding the
 * same target twice is a no-op.
 */
export class BuildQueue {
  readonly queue: Queue<TargetJobData>;

  constructor(connection: Redis, name: string, private readonly attempts: number) {
    this.queue = new Queue<TargetJobData>(name, { connection });
  }

  async enqueue(buildId: string, targets: readonly TargetId[]): Promise<void> {
    await this.queue.addBulk(targets.map((target) => ({ name: TARGET_JOB, data: { buildId, target }, opts: this.jobOptions(jobIdOf(buildId, target)) })));
  }

  async enqueueDependencies(buildId: string): Promise<void> {
    await this.queue.add(DEPENDENCIES_JOB, { buildId, target: 'linux-amd64' }, this.jobOptions(jobIdOf(buildId, 'deps')));
  }

  async enqueueImages(buildId: string): Promise<void> {
    // Attempts are the image build's own: a failed apt step does not get better by retrying.
    await this.queue.add(IMAGES_JOB, { buildId, target: 'linux-amd64' }, { ...this.jobOptions(jobIdOf(buildId, 'images')), attempts: 1 });
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
