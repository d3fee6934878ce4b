/**
 * A task run after `firstMs`, then `everyMs` after each run ends (never two at once), until
 * stopped: the sweeps of old builds and of idle cache volumes. A run that throws is told
 * to `onError` and the next one runs as planned. `stop` waits for a run under way.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly run: () => Promise<unknown>,
    private readonly onError: (err: Error) => void,
  ) {}

  start(firstMs: number, everyMs: number): void {
    if (this.timer || this.stopped) return;
    const tick = (delay: number) => {
      this.timer = setTimeout(() => {
        this.running = this.run()
          .catch(this.onError)
          .finally(() => {
            if (!this.stopped) tick(everyMs);
          });
      }, delay);
      this.timer.unref();
    };
    tick(firstMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
