import type { Redis } from 'ioredis';

/** Cancel requests travel from the API to every worker over Redis pub/sub. */
export class CancelChannel {
  constructor(private readonly channel = 'pf:cancel') {}

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
