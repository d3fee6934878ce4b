import type { Phase, PhaseTimings, TargetError } from '../builds/build-document.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ContainerSpec } from '../runtime/build-spec.js';
import type { BuildRuntime } from '../runtime/build-runtime.js';
import type { WorkerBlobs } from '../store/blob-store.js';
import { CanceledError, ContainerRun, timed, type ContainerPart } from './container-run.js';
import { LogSink } from './log-sink.js';
import type { Step } from './steps.js';

/** What running a pipeline needs: the engine, the store, and the log of the job it belongs to. */
export interface PipelineDeps {
  runtime: BuildRuntime;
  store: WorkerBlobs;
  appendLog: (text: string) => Promise<void>;
  /** How long teardown may take before it is given up (the sweeper catches what remains). */
  destroyTimeoutMs?: number;
}

/**
 * One run of a pipeline: what its steps share (the job's log, the cancel signal) and the
 * containers they made, every one removed by the run's teardown, last made first.
 */
export class PipelineRun {
  readonly log: LogSink;
  /** Where the run's time went, filled in as it runs (teardown included once the run has ended). */
  readonly phases: PhaseTimings = {};
  private readonly containers: ContainerRun[] = [];

  constructor(
    readonly deps: PipelineDeps,
    maxLogBytes: number,
    readonly signal: AbortSignal,
  ) {
    this.log = new LogSink(deps.appendLog, maxLogBytes);
  }

  /**
   * A container for a step, whose parts' times count towards the phases `phases` names
   * (its removal always towards teardown), with the `sandbox` to run in the holder of its
   * disks afterwards (the loading probe). The teardown removes it; a step may free it
   * earlier (destroy is idempotent).
   */
  container(spec: ContainerSpec, phases: Record<Exclude<ContainerPart, 'destroy'>, Phase>, sandbox?: ContainerSpec): ContainerRun {
    const run = new ContainerRun(
      this.deps.runtime,
      spec,
      this.deps.destroyTimeoutMs,
      (part, ms) => this.add(part === 'destroy' ? 'teardown' : phases[part], ms),
      sandbox,
    );
    this.containers.push(run);
    return run;
  }

  /** Counts `ms` towards a phase. */
  add(phase: Phase, ms: number): void {
    this.phases[phase] = Math.round((this.phases[phase] ?? 0) + ms);
  }

  /** Runs `work`, counting its time towards a phase. */
  timed<T>(phase: Phase, work: () => Promise<T>): Promise<T> {
    return timed(work, (ms) => this.add(phase, ms));
  }

  /** Removes every container of the run, last made first, each within its own deadline; then drains the log. */
  async teardown(): Promise<void> {
    for (const run of this.containers.splice(0).reverse()) await run.destroy();
    await this.log.drain().catch(() => undefined);
  }
}

/** A step container that builds: its parts are the phases of the same names. */
export const BUILD_PARTS = { prepare: 'prepare', create: 'create', input: 'sourceIn', run: 'compile' } as const satisfies Record<
  Exclude<ContainerPart, 'destroy'>,
  Phase
>;

/** What a step's runner says: the pipeline goes on to its next step, or ends here with an outcome. */
export type StepResult<O> = { next: true } | { end: O };

/** How a pipeline's steps are run, one runner per kind of step, and how its outcome is made. */
export type StepRunners<O> = {
  [K in Step['kind']]?: (step: Extract<Step, { kind: K }>) => Promise<StepResult<O>>;
} & {
  /** The outcome when every step went on. */
  finish: () => O;
};

/**
 * The executor (docs/architecture.md, "How the code reads"): runs any pipeline's steps in
 * order, each by the runner of its kind, until one ends it or none is left. Whatever
 * happens, every container a step made is removed in one deferred teardown. A step that
 * throws ends the pipeline as `settleError` says: canceled, failed for good, or rethrown
 * when retryable (the engine or the store unreachable), for the queue to try the job again.
 * `report`, when given, is told the outcome before the teardown (the user need not wait
 * for containers to go); a report that fails is thrown once the teardown is done.
 * `detach`, when given, is handed the teardown of a pipeline that ended (it never rejects)
 * instead of it being awaited.
 */
export async function executePipeline<O>(
  run: PipelineRun,
  steps: readonly Step[],
  runners: StepRunners<O>,
  report?: (outcome: O | Settled) => Promise<void>,
  detach?: (teardown: Promise<void>) => void,
): Promise<O | Settled> {
  let outcome: O | Settled;
  try {
    outcome = await runSteps(run, steps, runners);
    // Told before the teardown: removing containers is not part of what the user waits for.
    await report?.(outcome);
  } catch (err) {
    await run.teardown();
    throw err;
  }
  // Detached, the teardown goes on after the outcome is returned (the worker's slot is free
  // for the next target); whoever detached it awaits it.
  const teardown = run.teardown();
  if (detach) detach(teardown);
  else await teardown;
  return outcome;
}

async function runSteps<O>(run: PipelineRun, steps: readonly Step[], runners: StepRunners<O>): Promise<O | Settled> {
  try {
    for (const step of steps) {
      const runner = runners[step.kind] as ((s: Step) => Promise<StepResult<O>>) | undefined;
      if (!runner) throw new Error(`this pipeline has no runner for a ${step.kind} step`);
      const result = await runner(step);
      if ('end' in result) return result.end;
    }
    return runners.finish();
  } catch (err) {
    return settleError(err, run.log);
  }
}

/** A pipeline that a thrown error ended for good. */
export interface Settled {
  status: 'canceled' | 'failed';
  error: TargetError;
}

/**
 * How a step that threw ends: canceled, or failed for good (the error is final), or — a
 * retryable error — rethrown for the queue to try again. Each is noted in the log.
 */
export function settleError(err: unknown, log: LogSink): Settled {
  if (err instanceof CanceledError) {
    log.note('canceled');
    return { status: 'canceled', error: { code: 'canceled', message: err.message } };
  }
  if (err instanceof PlugforgeError && !err.retryable) {
    log.note(`failed: ${err.message}`);
    return { status: 'failed', error: { code: err.code, message: err.message } };
  }
  if (err instanceof PlugforgeError) log.note(err.message);
  throw err;
}
