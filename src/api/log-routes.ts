import { z } from 'zod';
import { Router, type Request, type Response } from 'express';
import { LineSplitter, LOG_TRUNCATED } from '../lines.js';
import { TERMINAL } from '../builds/build-document.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { LogRead, LogSource } from '../builds/build-repository.js';
import { isTargetId, ALL_TARGET_IDS, type TargetId } from '../contract/targets.js';
import type { ApiDeps } from './api-deps.js';
import { loadBuild } from './build-routes.js';
import { tenantOf } from './tenancy.js';

/** The line a reader is shown where the cap dropped lines it did not read. */
function truncatedLine(dropped: number | true, maxLines: number): string {
  const what =
    dropped === true
      ? "lines of this build's log were dropped here before they were read"
      : `${dropped} earlier lines of this build's log were dropped`;
  return `${LOG_TRUNCATED} ${what} (it keeps its last ${maxLines}, PLUGFORGE_MAX_LOG_LINES)\n`;
}

/**
 * Turns log chunks into whole lines. For all targets at once, each line gets a "[target] "
 * prefix; as events, each line is one. Chunks of one target may split a line, so the
 * partial line waits for the rest. One target's log as plain text passes through as it is.
 * As events, a carriage return ends a line too (a compiler's progress output): an event
 * reader takes CR for a line end, so one left in a data line would start a field or an
 * event of the build's own making.
 */
export class LineFormatter {
  private readonly lines = new LineSplitter<LogSource>();
  constructor(
    private readonly prefix: boolean,
    private readonly wholeLines: boolean,
  ) {}

  push(target: LogSource, text: string): string {
    if (!this.prefix && !this.wholeLines) return text;
    return this.lines
      .push(target, this.wholeLines ? text.replace(/\r\n?/g, '\n') : text)
      .map((l) => `${this.label(target)}${l}\n`)
      .join('');
  }

  flush(): string {
    return this.lines
      .rest()
      .map(([target, rest]) => `${this.label(target)}${rest}\n`)
      .join('');
  }

  private label(target: LogSource): string {
    return this.prefix ? `[${target}] ` : '';
  }
}

/** The query of GET /v1/builds/:id/logs: one target's lines, and whether to follow until the build ends. */
export const logQuerySchema = z.object({
  target: z.string().max(40).optional().describe('one target (or deps) only, without the [target] prefix'),
  follow: z.enum(['1', 'true', '0', 'false']).optional().describe('go on until the build ends'),
});

/** What GET /v1/builds/:id/logs asks for, checked against the build: one source (a target or deps) or all, and whether to follow. */
function logRequest(req: Request, id: string, targetIds: readonly TargetId[]): { target: string | undefined; follow: boolean } {
  const query = logQuerySchema.safeParse(req.query);
  if (!query.success)
    throw new PlugforgeError(
      'invalid_option',
      `Parameter "${String(query.error.issues[0]?.path[0] ?? 'query')}": ${query.error.issues[0]?.message ?? 'invalid'}.`,
    );
  const target = query.data.target;
  if (target !== undefined && target !== 'deps' && (!isTargetId(target) || !targetIds.includes(target))) {
    throw new PlugforgeError(
      'unknown_target',
      `Build ${id} has no target "${target}"; its targets: ${targetIds.join(', ')} (all targets: ${ALL_TARGET_IDS.join(', ')}).`,
    );
  }
  return { target, follow: query.data.follow === '1' || query.data.follow === 'true' };
}

/** How log reads reach the client: the wanted source's lines, as plain text or as events. */
interface LogWriter {
  tell(read: LogRead): void;
  /** A comment line while nothing came, so proxies keep an event stream open. */
  keepAlive(): void;
  /** The partial lines still held, written as whole ones. */
  flush(): void;
}

/** Starts the answer (plain text, or events when `sse`) and returns its writer. */
function logWriter(res: Response, sse: boolean, target: string | undefined, maxLines: number): LogWriter {
  const fmt = new LineFormatter(target === undefined, sse);
  const wanted = (t: LogSource) => target === undefined || t === target;
  if (sse) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
  } else {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
  }
  const emit = (text: string) => {
    if (!text) return;
    if (!sse) res.write(text);
    else for (const line of text.replace(/\n$/, '').split('\n')) res.write(`event: log\ndata: ${line}\n\n`);
  };
  // As events, each target's end too, once, as soon as its final state is written: a
  // client can fetch its artifact while the other targets still build.
  const told = new Set<TargetId>();
  const tell = (read: LogRead) => {
    if (read.dropped) emit(fmt.flush() + truncatedLine(read.dropped, maxLines));
    for (const e of read.entries) if (wanted(e.target)) emit(fmt.push(e.target, e.text));
    for (const { target: ended, status } of read.ended) {
      if (!sse || told.has(ended) || !wanted(ended)) continue;
      told.add(ended);
      res.write(`event: target\ndata: ${JSON.stringify({ target: ended, status })}\n\n`);
    }
  };
  return {
    tell,
    keepAlive: () => {
      if (sse) res.write(': keep-alive\n\n');
    },
    flush: () => emit(fmt.flush()),
  };
}

/**
 * Reads the build's log from its start into `out`; when following, waits on `reader` for more
 * until the asked-for source (the build, a target or deps) has ended or the client has gone.
 */
async function copyLogs(
  deps: ApiDeps,
  ask: { id: string; target: string | undefined; follow: boolean },
  reader: ApiDeps['redis'],
  closed: () => boolean,
  out: LogWriter,
): Promise<void> {
  const { id, target, follow } = ask;
  let cursor = '0';
  for (;;) {
    if (closed()) break;
    const read = await deps.repo.readLogs(id, cursor);
    cursor = read.lastId;
    out.tell(read);
    if (read.entries.length) continue;
    if (!follow || closed()) break;
    const now = await deps.repo.get(id);
    const relevant = target === 'deps' ? [now?.dependencies?.status] : target ? [now?.targets[target as TargetId]?.status] : [now?.status];
    if (!now || relevant.every((s) => s && TERMINAL.has(s))) {
      // One more read: output written just before the end.
      out.tell(await deps.repo.readLogs(id, cursor));
      break;
    }
    // Only a wait: what came is read at the top, with what the cap dropped meanwhile.
    const came = await deps.repo.withConnection(reader).waitForLogs(id, cursor, 2000);
    if (!came) out.keepAlive();
  }
}

export function logRoutes(deps: ApiDeps): Router {
  const router = Router();
  /** Follows being served now: each holds a Redis connection, so they are capped, in all and per tenant. */
  const followers = new FollowerCount(deps.config.maxLogFollowers, deps.config.tenancy.share);

  router.get('/v1/builds/:id/logs', async (req, res) => {
    const state = await loadBuild(deps, req);
    const id = state.record.id;
    const { target, follow } = logRequest(req, id, state.record.targetIds);
    const tenant = tenantOf(req);
    if (follow) followers.check(tenant);
    const sse = follow && (req.headers.accept ?? '').includes('text/event-stream');
    const out = logWriter(res, sse, target, deps.config.maxLogLines);

    // Following blocks on Redis (XREAD BLOCK), so it gets a connection of its own.
    if (follow) followers.take(tenant);
    const reader = follow ? deps.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: 1 }) : deps.redis;
    if (reader !== deps.redis) reader.on('error', () => undefined);
    let closed = false;
    req.on('close', () => {
      closed = true;
    });
    try {
      await copyLogs(deps, { id, target, follow }, reader, () => closed, out);
      out.flush();
      if (sse) {
        const final = await deps.repo.get(id);
        res.write(`event: end\ndata: ${JSON.stringify({ status: final?.status })}\n\n`);
      }
    } finally {
      if (follow) followers.give(tenant);
      if (reader !== deps.redis) reader.disconnect();
      endQuietly(res);
    }
  });

  return router;
}

/**
 * Log follows held at once in this process, in all (`max`) and per tenant (`share` of it,
 * at least one): one tenant cannot take every follower place from the others.
 */
class FollowerCount {
  private total = 0;
  private readonly byTenant = new Map<string, number>();
  private readonly perTenant: number;

  constructor(
    private readonly max: number,
    share: number,
  ) {
    this.perTenant = Math.max(1, Math.floor(max * share));
  }

  /** Refuses a follow past the server's cap (503) or past the tenant's share (429). */
  check(tenant: string): void {
    if (this.total >= this.max) {
      throw new PlugforgeError(
        'too_many_followers',
        `This server is following as many logs as it may (${this.max}); try again shortly, or read the log so far without follow=1.`,
        { status: 503, retryable: true },
      );
    }
    if ((this.byTenant.get(tenant) ?? 0) >= this.perTenant) {
      throw new PlugforgeError(
        'tenant_too_many_followers',
        `Tenant ${tenant} is following ${this.perTenant} logs at once, its share (${this.perTenant} of this server's ${this.max}); stop one, or read the log so far without follow=1.`,
        { status: 429, details: { limit: this.perTenant } },
      );
    }
  }

  take(tenant: string): void {
    this.total++;
    this.byTenant.set(tenant, (this.byTenant.get(tenant) ?? 0) + 1);
  }

  give(tenant: string): void {
    this.total--;
    const left = (this.byTenant.get(tenant) ?? 1) - 1;
    if (left > 0) this.byTenant.set(tenant, left);
    else this.byTenant.delete(tenant);
  }
}

function endQuietly(res: Response): void {
  if (!res.writableEnded) res.end();
}
