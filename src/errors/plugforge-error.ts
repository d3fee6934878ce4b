/**
 * An error a user can act on: a machine-readable `code`, a sentence saying what to do, and
 * the HTTP status it maps to. `retryable` says whether trying the same thing again later
 * can succeed (a vanished Docker daemon) or not (a compile error, a bad archive).
 */
export class PlugforgeError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly details?: Record<string, unknown>;

  constructor(
    code: string,
    message: string,
    options: { status?: number; retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PlugforgeError';
    this.code = code;
    this.status = options.status ?? 400;
    this.retryable = options.retryable ?? false;
    if (options.details) this.details = options.details;
  }

  toJSON(): { code: string; message: string } & Record<string, unknown> {
    return { code: this.code, message: this.message, ...(this.details ?? {}) };
  }
}
