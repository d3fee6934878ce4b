import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type {
  BuildDocumentBody as BuildDocumentView,
  BuildSummaryBody as BuildSummaryView,
  HealthBody,
  HostReleaseBody,
  HostReleaseListBody,
  WatchBody,
} from '../contract/api-schemas.js';
import { isTargetId, type TargetId } from '../contract/targets.js';
import { EventStreamParser } from './event-stream.js';
import { ClientError, EXIT } from './client-errors.js';
import { DEFAULT_RETRY_SECONDS, withRetries } from './retry.js';

export type BuildDocument = BuildDocumentView;

/** GET /v1/builds. */
export interface BuildList {
  builds: BuildSummaryView[];
  next?: string;
}

/** GET /v1/toolchains. */
export interface ToolchainList {
  repo: string;
  defaultGo: string;
  toolchains: { go: string; targets: TargetId[]; images: Partial<Record<TargetId, string>> }[];
}

/** A watch (POST/GET /v1/watches, docs/hosts.md): `build`'s source rebuilt for every new release of `host`. */
export type Watch = WatchBody;

/** GET /v1/callbacks/secret: what the tenant's callbacks are signed with. */
export interface CallbackSecret {
  secret: string;
  header: string;
  algorithm: string;
}

/** A request body that streams: a .tar.gz, or a multipart form around one. */
export interface UploadBody {
  stream: Readable;
  contentType: string;
}

export interface ClientOptions {
  /** Base URL of the API, e.g. http://localhost:8080 (a path prefix is kept). */
  server: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** No TCP connection within this: the server counts as unreachable (exit 3). */
  connectTimeoutMs?: number;
  /** How long a request is tried again after a transient failure (src/client/retry.ts); 0: once. */
  retryForMs?: number;
  /** Told before each wait for another try. */
  onRetry?: (err: ClientError, waitMs: number) => void;
}

interface SendOptions {
  method?: string;
  query?: Record<string, string | undefined>;
  headers?: Record<string, string>;
  body?: Readable;
  /** Nothing sent or received on the connection for this long: give up. */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
]);

/**
 * The REST API (README), for the CLI. Built on node:http rather than fetch for three
 * reasons: a connect timeout separate from long uploads and log streams; the answer the
 * server gives before it has read the whole upload (a refused option); and a streamed
 * request body without buffering. Every failure is a ClientError whose exitCode is 3:
 * the server is unreachable, or it refused the request (its code and message kept).
 */
export class PlugforgeClient {
  readonly server: string;
  private readonly base: URL;
  /** Whether the server has answered this client (a refused connection later is then a restart worth waiting for). */
  private answered = false;

  constructor(private readonly options: ClientOptions) {
    this.base = new URL(options.server);
    this.server = this.base.origin + this.base.pathname.replace(/\/$/, '');
  }

  /**
   * POST /v1/builds with a streamed body; resolves with the accepted build (202). Sends
   * `Expect: 100-continue`, so a server that checks the options from the headers can refuse
   * before a byte of the body goes out. Tried again on a transient failure with a fresh body
   * from `makeBody`, under one Idempotency-Key: a try that did reach the server gives its
   * build back instead of starting a second one.
   */
  async submit(makeBody: () => UploadBody, query: Record<string, string | undefined>, signal?: AbortSignal): Promise<BuildDocument> {
    const key = randomUUID();
    return withRetries(async () => {
      const body = makeBody();
      try {
        const res = await this.sendOnce('/v1/builds', {
          method: 'POST',
          query,
          headers: { 'Content-Type': body.contentType, Expect: '100-continue', 'Idempotency-Key': key },
          body: body.stream,
          idleTimeoutMs: 120_000,
          ...(signal ? { signal } : {}),
        });
        return (await readJson(res)) as BuildDocument;
      } catch (err) {
        body.stream.destroy();
        if (err instanceof ClientError && err.code === 'upload_broken') throw (await this.refusalOf(query)) ?? err;
        throw err;
      }
    }, this.retryPolicy(signal));
  }

  /**
   * The server answers a refused option at once and closes the connection; while the body
   * is still streaming that answer is often lost in the reset. Asking again with an empty
   * body gets it back: options are checked before the body, and an empty body can never
   * become a build. Undefined when the options were not the problem.
   */
  private async refusalOf(query: Record<string, string | undefined>): Promise<ClientError | undefined> {
    try {
      await this.send('/v1/builds', {
        method: 'POST',
        query,
        headers: { 'Content-Type': 'application/gzip', 'Content-Length': '0' },
        idleTimeoutMs: 15_000,
      });
    } catch (err) {
      const transient = err instanceof ClientError && (err.status === 429 || err.status === 503 || err.code === 'idempotency_key_in_use');
      if (err instanceof ClientError && err.status !== undefined && !err.code.startsWith('archive_') && !transient) return err;
    }
    return undefined;
  }

  async build(id: string, signal?: AbortSignal): Promise<BuildDocument> {
    return (await readJson(await this.send(`/v1/builds/${encodeURIComponent(id)}`, signal ? { signal } : {}))) as BuildDocument;
  }

  /** DELETE /v1/builds/:id. A build that has already ended gives ClientError `build_finished` (409). */
  async cancel(id: string): Promise<BuildDocument> {
    return (await readJson(
      await this.send(`/v1/builds/${encodeURIComponent(id)}`, { method: 'DELETE', idleTimeoutMs: 15_000 }),
    )) as BuildDocument;
  }

  /** GET /v1/builds: one page of the caller's builds, newest first (`next`: the cursor of the page after). */
  async builds(query: Record<string, string | undefined>): Promise<BuildList> {
    return (await readJson(await this.send('/v1/builds', { query }))) as BuildList;
  }

  /**
   * POST /v1/hosts: registers a host release (a multipart form, sent once the server has
   * checked the token); resolves with its document (201). Tried once: its body is a stream,
   * and a try whose answer was lost is seen again as 409 host_release_exists.
   */
  async registerHost(body: UploadBody): Promise<HostReleaseBody> {
    return (await readJson(
      await this.sendOnce('/v1/hosts', {
        method: 'POST',
        headers: { 'Content-Type': body.contentType, Expect: '100-continue' },
        body: body.stream,
        idleTimeoutMs: 120_000,
      }),
    )) as HostReleaseBody;
  }

  /** GET /v1/hosts: the caller's host releases and the installation's, optionally of one name. */
  async hosts(name?: string): Promise<HostReleaseListBody> {
    return (await readJson(await this.send('/v1/hosts', { query: { name } }))) as HostReleaseListBody;
  }

  /** DELETE /v1/hosts/:name/:version; an unknown release gives ClientError `host_release_unknown` (404). */
  async removeHost(name: string, version: string): Promise<void> {
    (
      await this.send(`/v1/hosts/${encodeURIComponent(name)}/${encodeURIComponent(version)}`, { method: 'DELETE', idleTimeoutMs: 15_000 })
    ).resume();
  }

  /**
   * POST /v1/watches; resolves with the watch (201). Tried once: a try whose answer was lost
   * may have added it, and a second try would add it again.
   */
  async addWatch(watch: { build: string; host: string; callback?: string }): Promise<Watch> {
    return (await readJson(
      await this.sendOnce('/v1/watches', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Expect: '100-continue' },
        body: Readable.from([JSON.stringify(watch)]),
        idleTimeoutMs: 15_000,
      }),
    )) as Watch;
  }

  /** GET /v1/watches: the caller's watches, oldest first. */
  async watches(): Promise<{ watches: Watch[] }> {
    return (await readJson(await this.send('/v1/watches'))) as { watches: Watch[] };
  }

  /** DELETE /v1/watches/:id; an unknown watch gives ClientError `watch_not_found` (404). */
  async removeWatch(id: string): Promise<void> {
    (await this.send(`/v1/watches/${encodeURIComponent(id)}`, { method: 'DELETE', idleTimeoutMs: 15_000 })).resume();
  }

  /** GET /v1/callbacks/secret. */
  async callbackSecret(): Promise<CallbackSecret> {
    return (await readJson(await this.send('/v1/callbacks/secret'))) as CallbackSecret;
  }

  /** GET /healthz: the server answers, with its version. */
  async health(): Promise<HealthBody> {
    return (await readJson(await this.send('/healthz', { idleTimeoutMs: 15_000 }))) as HealthBody;
  }

  async toolchains(): Promise<ToolchainList> {
    return (await readJson(await this.send('/v1/toolchains'))) as ToolchainList;
  }

  /** The build's log as it is now (text, lines prefixed `[target] ` unless one target is asked for). */
  logs(id: string, target?: string, signal?: AbortSignal): Promise<http.IncomingMessage> {
    return this.send(`/v1/builds/${encodeURIComponent(id)}/logs`, { query: { target }, ...(signal ? { signal } : {}) });
  }

  /**
   * Follows the log as Server-Sent Events until the build (or the one target) ends, handing
   * each line to `onLine`. Resolves `{ ended: true, status }` on the server's end event, or
   * `{ ended: false, reason }` when the stream broke off first (the build may still run).
   * The server sends a keep-alive every 2 s, so 30 s of silence means the connection is gone.
   */
  async followLogs(
    id: string,
    options: { target?: string; signal?: AbortSignal },
    onLine: (line: string) => void,
    /** Told each target's end as the server announces it (its final status), before the build's. */
    onTarget?: (target: TargetId, status: string) => void,
  ): Promise<{ ended: true; status?: string } | { ended: false; reason: string }> {
    const res = await this.send(`/v1/builds/${encodeURIComponent(id)}/logs`, {
      query: { follow: '1', target: options.target },
      headers: { Accept: 'text/event-stream' },
      idleTimeoutMs: 30_000,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    let status: string | undefined;
    let ended = false;
    const parser = new EventStreamParser((event) => {
      if (event.event === 'log') onLine(event.data);
      else if (event.event === 'target') {
        const told = parseTargetEvent(event.data);
        if (told) onTarget?.(told.target, told.status);
      } else if (event.event === 'end') {
        ended = true;
        try {
          status = (JSON.parse(event.data) as { status?: string }).status;
        } catch {
          // An end event without a readable status still ends the stream.
        }
      }
    });
    res.setEncoding('utf8');
    try {
      for await (const chunk of res) parser.push(chunk as string);
      parser.end();
    } catch (err) {
      if (options.signal?.aborted) throw err;
      return { ended: false, reason: (err as Error).message };
    }
    return ended
      ? { ended: true, ...(status ? { status } : {}) }
      : { ended: false, reason: 'the server closed the log stream before the build ended' };
  }

  /** GET /v1/builds/:id/artifacts/:target: the bytes, with their sha256 in X-Plugforge-Sha256. */
  artifact(id: string, target: TargetId, signal?: AbortSignal): Promise<http.IncomingMessage> {
    return this.send(`/v1/builds/${encodeURIComponent(id)}/artifacts/${target}`, { idleTimeoutMs: 60_000, ...(signal ? { signal } : {}) });
  }

  /** GET /v1/builds/:id/bundle.tar.gz: the Mattermost-style bundle of an exe build, its file name in Content-Disposition. */
  bundle(id: string, signal?: AbortSignal): Promise<http.IncomingMessage> {
    return this.send(`/v1/builds/${encodeURIComponent(id)}/bundle.tar.gz`, { idleTimeoutMs: 60_000, ...(signal ? { signal } : {}) });
  }

  /** GET /v1/builds/:id/bundle.tar.gz.sig: the bundle's detached OpenPGP signature (binary). */
  bundleSignature(id: string, signal?: AbortSignal): Promise<http.IncomingMessage> {
    return this.send(`/v1/builds/${encodeURIComponent(id)}/bundle.tar.gz.sig`, { idleTimeoutMs: 60_000, ...(signal ? { signal } : {}) });
  }

  /** GET /v1/keys: the server's public keys, current first (no token needed). */
  async keys(): Promise<{ keys: { keyid: string; algorithm: string; publicKey: string; current: boolean; createdAt: string }[] }> {
    return (await readJson(await this.send('/v1/keys'))) as {
      keys: { keyid: string; algorithm: string; publicKey: string; current: boolean; createdAt: string }[];
    };
  }

  /**
   * The build's evidence as text: `provenance` (the DSSE envelope, JSON), or a target's
   * `sbom` (CycloneDX JSON) or `signature` (base64). Up to 16 MiB; a server without the
   * route rejects with its ClientError (404 not_found).
   */
  async evidence(
    id: string,
    what: { kind: 'provenance' } | { kind: 'sbom' | 'signature'; target: TargetId },
    signal?: AbortSignal,
  ): Promise<string> {
    const base = `/v1/builds/${encodeURIComponent(id)}`;
    const pathname = what.kind === 'provenance' ? `${base}/provenance` : `${base}/artifacts/${what.target}/${what.kind}`;
    return readText(await this.send(pathname, { idleTimeoutMs: 60_000, ...(signal ? { signal } : {}) }), 16 << 20);
  }

  private retryPolicy(signal?: AbortSignal) {
    return {
      forMs: this.options.retryForMs ?? DEFAULT_RETRY_SECONDS * 1000,
      answeredBefore: () => this.answered,
      ...(this.options.onRetry ? { onRetry: this.options.onRetry } : {}),
      ...(signal ? { signal } : {}),
    };
  }

  /** Runs `attempt` again after a transient failure (a download that broke off, say), as requests are (src/client/retry.ts). */
  retrying<T>(attempt: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetries(attempt, this.retryPolicy(signal));
  }

  /** A request without a body, tried again on a transient failure (src/client/retry.ts). */
  private send(pathname: string, opts: Omit<SendOptions, 'body'> = {}): Promise<http.IncomingMessage> {
    return withRetries(() => this.sendOnce(pathname, opts), this.retryPolicy(opts.signal));
  }

  /** One request; resolves with a response whose status is below 400, else rejects with a ClientError. */
  private sendOnce(pathname: string, opts: SendOptions = {}): Promise<http.IncomingMessage> {
    const url = new URL(this.base.pathname.replace(/\/$/, '') + pathname, this.base);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { 'User-Agent': 'plugforge-cli', Accept: 'application/json', ...opts.headers };
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token}`;
    if (opts.body) headers['Transfer-Encoding'] = 'chunked';
    const transport = url.protocol === 'https:' ? https : http;
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 5000;

    return new Promise((resolve, reject) => {
      let answered = false;
      let bodyStarted = false;
      // An agent of our own: Node's global one puts a 5 s idle timeout on every socket,
      // which would cut off a quiet log stream.
      const agent = url.protocol === 'https:' ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
      const req = transport.request(url, { method: opts.method ?? 'GET', headers, agent, ...(opts.signal ? { signal: opts.signal } : {}) });
      const unreachable = () =>
        new ClientError(
          'server_unreachable',
          `Cannot reach plugforge at ${this.server}: no connection within ${connectTimeoutMs / 1000} s. Check --server or PLUGFORGE_URL.`,
        );
      req.setTimeout(opts.idleTimeoutMs ?? 30_000, () => {
        if (req.socket?.connecting) return req.destroy(unreachable());
        req.destroy(
          new ClientError(
            'server_timeout',
            `${this.server} stopped answering (nothing for ${Math.round((opts.idleTimeoutMs ?? 30_000) / 1000)} s).`,
          ),
        );
      });
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(unreachable()), connectTimeoutMs);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (answered) return;
        reject(this.mapError(err, opts, bodyStarted));
      });
      req.on('response', (res) => {
        answered = true;
        this.answered = true;
        if (opts.body && !opts.body.readableEnded) {
          // Refused part-way: stop reading files for a body nobody reads.
          opts.body.unpipe(req);
          opts.body.destroy();
        }
        if ((res.statusCode ?? 0) < 400) return resolve(res);
        readError(res).then(reject, reject);
      });

      if (!opts.body) {
        req.end();
        return;
      }
      const body = opts.body;
      body.once('error', (err) => req.destroy(err));
      const startBody = () => {
        if (bodyStarted || answered) return;
        bodyStarted = true;
        body.pipe(req);
      };
      // A server that does not check Expect answers 100 at once (Node's does); one that
      // says nothing within a second gets the body anyway, as RFC 9110 allows.
      req.once('continue', startBody);
      req.flushHeaders();
      setTimeout(startBody, 1000).unref();
    });
  }

  private mapError(err: NodeJS.ErrnoException, opts: SendOptions, bodyStarted: boolean): Error {
    if (err instanceof ClientError) return err;
    if (err.name === 'AbortError') return err;
    const code = err.code ?? '';
    if (opts.body?.readableEnded && (code === 'EPIPE' || code === 'ECONNRESET')) {
      return new ClientError(
        'connection_lost',
        `The connection to ${this.server} was lost after the upload was sent, before the server answered (${code}).`,
        { network: code },
      );
    }
    if (opts.body && bodyStarted && (code === 'EPIPE' || code === 'ECONNRESET')) {
      return new ClientError(
        'upload_broken',
        `The server closed the connection while the source was being sent (${code}): it refused the upload part-way, ` +
          'most likely because it is larger than the server accepts (200 MiB by default, 64 MiB per file). Leave large files out with .plugforgeignore.',
      );
    }
    if (NETWORK_ERRORS.has(code) || code.startsWith('ERR_TLS') || code.includes('CERT')) {
      return new ClientError(
        'server_unreachable',
        `Cannot reach plugforge at ${this.server} (${code}: ${err.message}). Is it running? Check --server or PLUGFORGE_URL.`,
        { network: code },
      );
    }
    // Not the network: a local failure such as a file that could not be packed.
    return err;
  }
}

async function readText(res: http.IncomingMessage, max = 1 << 20): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res) {
    text += chunk as string;
    if (text.length > max) {
      res.destroy();
      break;
    }
  }
  return text;
}

async function readJson(res: http.IncomingMessage): Promise<unknown> {
  const text = await readText(res, 16 << 20);
  try {
    return JSON.parse(text);
  } catch {
    throw new ClientError('bad_response', `The server answered ${res.statusCode} with something that is not JSON: ${text.slice(0, 200)}`);
  }
}

/** A 4xx/5xx answer as a ClientError with the server's code and message (`{"error": {code, message}}`). */
async function readError(res: http.IncomingMessage): Promise<ClientError> {
  const status = res.statusCode ?? 0;
  const text = await readText(res, 64 * 1024).catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (body.error && typeof body.error.code === 'string') {
      return new ClientError(body.error.code, String(body.error.message ?? ''), { status, exitCode: EXIT.server, ...retryAfterOf(res) });
    }
  } catch {
    // Not plugforge's error shape (a proxy's page, say): the status and the start of the text.
  }
  return new ClientError(
    `http_${status}`,
    `The server answered ${status} ${res.statusMessage ?? ''}: ${text.replace(/\s+/g, ' ').slice(0, 200)}`.trim(),
    { status, exitCode: EXIT.server, ...retryAfterOf(res) },
  );
}

/** Retry-After in seconds or as an HTTP date, in milliseconds (at most an hour). */
function retryAfterOf(res: http.IncomingMessage): { retryAfterMs?: number } {
  const value = res.headers['retry-after'];
  if (value === undefined) return {};
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? { retryAfterMs: Math.min(3600, Math.max(0, seconds)) * 1000 } : {};
}

/** A `target` event's data ({target, status}), or nothing when it is not one. */
function parseTargetEvent(data: string): { target: TargetId; status: string } | undefined {
  try {
    const told = JSON.parse(data) as { target?: unknown; status?: unknown };
    return typeof told.target === 'string' && isTargetId(told.target) && typeof told.status === 'string'
      ? { target: told.target, status: told.status }
      : undefined;
  } catch {
    return undefined;
  }
}
