import type { Redis } from 'ioredis';

/**
 * Cancel requests travel from the API to every worker of the installation over Redis
 * pub/sub (one channel per queue). A worker that misses one finds the cancel in the build's
 * state (BuildWorker checks its running jobs every few seconds).
 * Concurrency: any number of publishers and subscribers. Idempotent: a cancel published
 * twice cancels once (a worker cancels only the jobs it runs). Errors: a Redis that cannot
 * be reached rejects `publish`; the API has already written the cancel into the build's
 * state, which is the truth, so a lost message costs only delay.
 */
export class CancelChannel {
  constructor(private readonly channel = 'pf:cancel') {}

  static forQueue(queue: string): CancelChannel {
    return new CancelChannel(`pf:${queue}:cancel`);
  }

  async publish(redis: Redis, buildId: string): Promise<void> {
    await redis.publish(this.channel, buildId);
  }

  /** Subscribes a dedicated connection (a subscribed ioredis client can do nothing else). */
  async subscribe(subscriber: Redis, onCancel: (buildId: string) => void): Promise<void> {
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) onCancel(message);
    });
    await subscriber.subscribe(this.channel);
  }
}
