import type { TargetError } from '../builds/build-document.js';
import { PlugforgeError } from '../errors/plugforge-error.js';

/** A job's attempt that threw, as its state records it. */
export interface Failure {
  /** The error as plugforge's own: an unknown one becomes `unexpected`'s (internal_error). */
  error: PlugforgeError;
  /** No attempt remains: recorded for good. Otherwise the job goes back to the queue. */
  final: boolean;
  /** What the state records: the attempt and "retrying", or how many attempts it took. */
  recorded: TargetError;
}

/** An error plugforge did not name: the machinery's (engine, store, Redis), so retried. */
export function unexpectedFailure(err: unknown): PlugforgeError {
  return new PlugforgeError('internal_error', `Unexpected failure: ${(err as Error).message}`, {
    status: 500,
    retryable: true,
    cause: err,
  });
}

/**
 * The one classifier of a job's thrown error, for every kind of job (docs/architecture.md,
 * "Retryable or final"): an attempt that threw is retried while attempts remain, whatever
 * the error; a failure of the plugin itself is an outcome, never thrown.
 */
export function classifyFailure(
  err: unknown,
  attempt: number,
  attempts: number,
  unexpected: (err: unknown) => PlugforgeError = unexpectedFailure,
): Failure {
  const error = err instanceof PlugforgeError ? err : unexpected(err);
  const final = attempt >= attempts;
  const recorded = final
    ? { code: error.code, message: `${error.message} (gave up after ${attempt} attempts)`, retryable: error.retryable }
    : { code: error.code, message: `${error.message} (attempt ${attempt} of ${attempts}; retrying)`, retryable: true };
  return { error, final, recorded };
}

/** A phase's failure (images, dependencies) as the error of each of the build's targets, the phase named. */
export function phaseErrorOf(phase: string, error: TargetError): TargetError {
  return { ...error, message: `${phase}: ${error.message}` };
}
