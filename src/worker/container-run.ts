import type { Readable, Writable as WritableStream } from 'node:stream';
import { Writable } from 'node:stream';
import { CONTAINER_PATHS, type ContainerSpec } from '../runtime/build-spec.js';
import type { BuildRuntime, ContainerHandle, DiskName, ExitStatus } from '../runtime/build-runtime.js';

/** Why a step was stopped from outside. */
export class CanceledError extends Error {
  constructor() {
    super('The build was canceled.');
    this.name = 'CanceledError';
  }
}

/** A step's container that reached its deadline (spec.limits.timeoutMs); it was killed. */
export class DeadlineError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`did not finish within ${timeoutMs / 1000} s`);
    this.name = 'DeadlineError';
  }
}

/**
 * One container of a pipeline step, the same way for every kind of step (a dependency
 * download, a target's build, a loading probe): the build cache prepared, the container
 * created, its input put in at /work, started with the given output streams and waited for
 * under the step's deadline. A cancel rejects with CanceledError, the deadline with
 * DeadlineError. The container stays until `destroy()`, which the caller runs in its
 * `finally` (a teardown with a deadline of its own; idempotent), so what a step reads from
 * the stopped container (an artifact, a probe binary) is still there.
 * Errors of the runtime itself (an engine gone) pass through: they are retryable.
 */
export class ContainerRun {
  private handle: ContainerHandle | undefined;

  constructor(
    private readonly runtime: BuildRuntime,
    readonly spec: ContainerSpec,
    private readonly destroyTimeoutMs = 30_000,
    /** Told how long each part of the container's life took (phase timings). */
    private readonly time: (part: ContainerPart, ms: number) => void = () => undefined,
    /** What runs in the holder of its disks once it is gone (the loading probe): the holder is made of it. */
    private readonly sandbox?: ContainerSpec,
  ) {}

  /** Which disks were full when the sandbox reached its deadline (measured just before it was killed). */
  fullAtDeadline: DiskName[] = [];

  private timed<T>(part: ContainerPart, work: () => Promise<T>): Promise<T> {
    return timed(work, (ms) => this.time(part, ms));
  }

  /** The container, once created (getArchive, fullDisks). */
  get container(): ContainerHandle {
    if (!this.handle) throw new Error('the container of this step was not created, or is gone');
    return this.handle;
  }

  private async make(): Promise<ContainerHandle> {
    await this.timed('prepare', () => this.runtime.prepareCache(this.spec));
    this.handle = await this.timed('create', () => this.runtime.create(this.spec, this.sandbox));
    return this.handle;
  }

  /**
   * Runs the container to its exit, with `input` put in at /work first. `before` runs just
   * before the start (a log line).
   */
  async run(
    input: Readable | undefined,
    output: { stdout: WritableStream; stderr?: WritableStream },
    signal: AbortSignal,
    before?: () => void,
  ): Promise<ExitStatus> {
    const timeout = AbortSignal.timeout(this.spec.limits.timeoutMs);
    const stop = AbortSignal.any([signal, timeout]);
    const handle = await this.make();
    if (input) await this.timed('input', () => this.runtime.putArchive(handle, CONTAINER_PATHS.work, input));
    if (stop.aborted) throw signal.aborted ? new CanceledError() : new DeadlineError(this.spec.limits.timeoutMs);
    before?.();
    try {
      return await this.timed('run', async () => {
        await this.runtime.start(handle, output.stdout, ...(output.stderr ? [output.stderr] : []));
        return this.runtime.wait(handle, stop);
      });
    } catch (err) {
      if (signal.aborted) throw new CanceledError();
      if (timeout.aborted) throw new DeadlineError(this.spec.limits.timeoutMs);
      throw err;
    }
  }

  /**
   * Runs the sandbox in the holder of the container's disks (after `release`), under the
   * sandbox's deadline: a cancel rejects with CanceledError, the deadline (once the disks
   * were measured, `fullAtDeadline`) with DeadlineError; either kills the holder.
   */
  async runSandbox(
    output: { stdout: WritableStream; stderr: WritableStream },
    signal: AbortSignal,
    before?: () => void,
  ): Promise<ExitStatus> {
    const handle = this.container;
    const timeoutMs = this.sandbox?.limits.timeoutMs ?? this.spec.limits.timeoutMs;
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      void this.runtime
        .fullDisks(handle)
        .then(
          (full) => (this.fullAtDeadline = full),
          () => undefined,
        )
        .finally(() => deadline.abort());
    }, timeoutMs);
    before?.();
    try {
      return await this.runtime.runInHolder(handle, output.stdout, output.stderr, AbortSignal.any([signal, deadline.signal]));
    } catch (err) {
      if (signal.aborted) throw new CanceledError();
      if (deadline.signal.aborted) throw new DeadlineError(timeoutMs);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Removes the container but not its disks nor their holder: the sandbox runs there next
   * (the probe, on what its build left). `destroy` removes them too.
   */
  async release(): Promise<void> {
    const handle = this.handle;
    if (handle) await this.timed('destroy', () => this.runtime.destroy({ id: handle.id }).catch(() => undefined));
  }

  /** Removes the container (and its disks), within its own deadline; a leftover is for the sweeper. */
  async destroy(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (!handle) return;
    let timer: NodeJS.Timeout | undefined;
    await this.timed('destroy', () =>
      Promise.race([
        this.runtime.destroy(handle).catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.destroyTimeoutMs);
        }),
      ]),
    );
    clearTimeout(timer);
  }
}

/** Runs `work` and tells `onMs` how long it took, whether it resolved or threw. */
export async function timed<T>(work: () => Promise<T>, onMs: (ms: number) => void): Promise<T> {
  const start = performance.now();
  try {
    return await work();
  } finally {
    onMs(performance.now() - start);
  }
}

/** The parts of a step container's life that are timed. */
export type ContainerPart = 'prepare' | 'create' | 'input' | 'run' | 'destroy';

/** Keeps what a container prints on a stream, up to `max` bytes, decoded once at the end (a character split across chunks stays whole). */
export class OutputCollector extends Writable {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    if (this.size < this.max) {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
    done();
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
