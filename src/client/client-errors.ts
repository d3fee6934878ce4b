/** The exit codes of the client commands (docs/cli.md). */
export const EXIT = {
  /** Every target built, and every download verified. */
  ok: 0,
  /** A target failed, was canceled, or an artifact did not verify. */
  failed: 1,
  /** The command line cannot be run as given. */
  usage: 2,
  /** The server is unreachable, or it refused the request. */
  server: 3,
  /** Ctrl-C (128 + SIGINT, as shells report it). */
  interrupted: 130,
} as const;

/**
 * A request that did not get what it asked for: the server was unreachable, stopped
 * answering, or refused (then `status` and the server's own `code` are kept).
 */
export class ClientError extends Error {
  readonly status?: number;
  readonly exitCode: number;
  /** The server's Retry-After, in milliseconds. */
  readonly retryAfterMs?: number;
  /** The network error's code (ECONNRESET, ECONNREFUSED…) when the connection failed. */
  readonly network?: string;

  constructor(
    readonly code: string,
    message: string,
    options: { status?: number; exitCode?: number; retryAfterMs?: number; network?: string } = {},
  ) {
    super(message);
    this.name = 'ClientError';
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.network !== undefined) this.network = options.network;
    this.exitCode = options.exitCode ?? EXIT.server;
  }
}
