import type { ErrorRequestHandler, Response } from 'express';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { Logger } from '../log.js';

/** Sends `{"error": {"code", "message"}}` with the error's status. */
export function sendError(res: Response, err: PlugforgeError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(err.status).json({ error: err.toJSON() });
}

function isRedisDown(err: unknown): boolean {
  const msg = (err as Error)?.message ?? '';
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|MaxRetriesPerRequest|enableOfflineQueue/i.test(msg);
}

/** A client that went away mid-response (a download cut off, a follow closed): not our error. */
export function isClientGone(err: unknown, res: Response): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'EPIPE' || (res.destroyed && !res.writableFinished);
}

/**
 * The last error handler: a client that went away costs a debug line; known errors as they
 * are; Redis trouble as 503; anything else 500 without internals. Once a response has
 * started, an error can only end it: the connection is closed so the client sees a
 * truncated body, never a complete-looking one.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (isClientGone(err, res)) {
      log.debug({ path: req.path, err: (err as Error)?.message }, 'client went away mid-response');
      res.destroy();
      return;
    }
    if (res.headersSent) {
      log.warn({ path: req.path, err: (err as Error)?.message }, 'response cut off by an error after it started');
      res.destroy();
      return;
    }
    if (err instanceof PlugforgeError) return sendError(res, err);
    if (isRedisDown(err)) {
      return sendError(
        res,
        new PlugforgeError('redis_unavailable', 'The build queue (Redis) is unreachable; try again shortly.', {
          status: 503,
          retryable: true,
        }),
      );
    }
    const status = (err as { status?: number; statusCode?: number }).status ?? (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      return sendError(res, new PlugforgeError('bad_request', (err as Error).message || 'Bad request.', { status }));
    }
    log.error({ err: (err as Error)?.stack ?? String(err), path: req.path }, 'unexpected error');
    sendError(res, new PlugforgeError('internal_error', 'An unexpected error occurred; it has been logged.', { status: 500 }));
  };
}
