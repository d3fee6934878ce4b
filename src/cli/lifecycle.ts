/**
 * The parts of a process (shared connections, a worker, an HTTP server), each started by a
 * function that answers with what it made and how to stop it. They stop in reverse order
 * of starting, each whatever the others did; a part whose start throws has stopped itself,
 * and the caller stops the ones before it.
 */
export class Lifecycle {
  private readonly parts: { name: string; stop: () => Promise<unknown> }[] = [];

  async start<T>(name: string, start: () => Promise<{ value: T; stop: () => Promise<unknown> }>): Promise<T> {
    const { value, stop } = await start();
    this.parts.push({ name, stop });
    return value;
  }

  /** Stops every part started, last first; idempotent. */
  async stop(): Promise<void> {
    for (let part = this.parts.pop(); part; part = this.parts.pop()) await part.stop().catch(() => undefined);
  }
}
