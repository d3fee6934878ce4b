import { randomBytes } from 'node:crypto';
import express, { Router } from 'express';
import { z } from 'zod';
import type { HostScope } from '../builds/host-releases.js';
import { HOST_NAME_RE, type WatchBody } from '../contract/api-schemas.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ApiDeps } from './api-deps.js';
import { checkCallbackUrl } from './callback-url.js';
import type { SubmissionService } from './submission.js';
import { assertOwnBuild, tenantOf } from './tenancy.js';

/** A tenant's watch (docs/hosts.md, "Watches"): rebuild `build`'s source for every new release of `host`; its latest rebuilds, newest last. */
export type Watch = WatchBody;
type WatchBuild = Watch['builds'][number];

/** Watches one tenant may hold. */
export const MAX_WATCHES_PER_TENANT = 20;
/** Rebuilds a watch remembers. */
const KEEP_BUILDS = 10;

const watchBodySchema = z
  .object({
    build: z.string().regex(/^[a-z0-9]{1,40}$/, 'must be a build id'),
    host: z.string().regex(HOST_NAME_RE, 'must be a host name such as gotify'),
    callback: z.string().max(2048).optional(),
  })
  .strict();

/**
 * Watches: a tenant names one of its builds and a host name; every release of that host
 * registered or resolved afterwards (the tenant's own, or the installation's) rebuilds that
 * build's source with the same options against the new release (hosts=<name>@<version>),
 * as an ordinary build of the tenant, with the watch's callback. Redis:
 * `pf:<queue>:watches:<tenant>` (hash id → watch), `pf:<queue>:watches-of:<host>` (set of
 * `<tenant>/<id>`). A rebuild the tenant's limits refuse is recorded on the watch with why.
 */
export class Watches {
  constructor(
    private readonly deps: ApiDeps,
    private readonly submissions: SubmissionService,
  ) {}

  private key(part: string): string {
    return `pf:${this.deps.config.queueName}:${part}`;
  }

  async add(tenant: string, watch: Omit<Watch, 'id' | 'createdAt' | 'builds'>): Promise<Watch> {
    if ((await this.deps.redis.hlen(this.key(`watches:${tenant}`))) >= MAX_WATCHES_PER_TENANT) {
      throw new PlugforgeError(
        'too_many_watches',
        `Tenant ${tenant} has ${MAX_WATCHES_PER_TENANT} watches, as many as it may. Remove one (DELETE /v1/watches/:id), then add this one.`,
        { status: 429 },
      );
    }
    const made: Watch = { ...watch, id: `w${randomBytes(8).toString('hex')}`, createdAt: new Date().toISOString(), builds: [] };
    await this.deps.redis
      .multi()
      .hset(this.key(`watches:${tenant}`), made.id, JSON.stringify(made))
      .sadd(this.key(`watches-of:${made.host}`), `${tenant}/${made.id}`)
      .exec();
    return made;
  }

  async list(tenant: string): Promise<Watch[]> {
    const all = await this.deps.redis.hvals(this.key(`watches:${tenant}`));
    return all.map((w) => JSON.parse(w) as Watch).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async remove(tenant: string, id: string): Promise<boolean> {
    const raw = await this.deps.redis.hget(this.key(`watches:${tenant}`), id);
    if (!raw) return false;
    const watch = JSON.parse(raw) as Watch;
    await this.deps.redis
      .multi()
      .hdel(this.key(`watches:${tenant}`), id)
      .srem(this.key(`watches-of:${watch.host}`), `${tenant}/${id}`)
      .exec();
    return true;
  }

  /** A release was registered or resolved: every watch of its host that can see it rebuilds (one at a time). */
  async onRelease(scope: HostScope, name: string, version: string): Promise<void> {
    const release = `${name}@${version}`;
    for (const member of await this.deps.redis.smembers(this.key(`watches-of:${name}`))) {
      const [tenant = '', id = ''] = member.split('/');
      if (scope.kind === 'tenant' && scope.tenant !== tenant) continue;
      const raw = await this.deps.redis.hget(this.key(`watches:${tenant}`), id);
      if (!raw) continue;
      const watch = JSON.parse(raw) as Watch;
      const done = await this.rebuild(tenant, watch, release);
      // Written back whole: the watch may have been removed meanwhile (then nothing is written).
      const now = await this.deps.redis.hget(this.key(`watches:${tenant}`), id);
      if (!now) continue;
      const current = JSON.parse(now) as Watch;
      current.builds = [...current.builds, done].slice(-KEEP_BUILDS);
      await this.deps.redis.hset(this.key(`watches:${tenant}`), id, JSON.stringify(current));
    }
  }

  private async rebuild(tenant: string, watch: Watch, release: string): Promise<WatchBuild> {
    const at = new Date().toISOString();
    try {
      const from = await this.deps.repo.get(watch.build);
      if (!from)
        throw new PlugforgeError(
          'watched_build_gone',
          `Build ${watch.build}, whose source the watch rebuilds, is gone (swept by retention): watch a newer build.`,
        );
      const state = await this.submissions.submitStored(tenant, from.record, release, watch.callback);
      this.deps.log.info({ watch: watch.id, release, build: state.record.id }, 'watch rebuilt');
      return { release, at, build: state.record.id };
    } catch (err) {
      const e = err instanceof PlugforgeError ? err : new PlugforgeError('internal_error', (err as Error).message);
      this.deps.log.warn({ watch: watch.id, release, code: e.code, err: e.message }, 'watch could not rebuild');
      return { release, at, error: { code: e.code, message: e.message } };
    }
  }
}

/** POST /v1/watches, GET /v1/watches, DELETE /v1/watches/:id (docs/hosts.md, "Watches"). */
export function watchRoutes(deps: ApiDeps, watches: Watches): Router {
  const router = Router();
  router.post('/v1/watches', express.json({ limit: '8kb' }), async (req, res) => {
    const parsed = watchBodySchema.safeParse(req.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new PlugforgeError(
        'invalid_watch',
        `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}. Send JSON {"build": "<id of a build of yours>", "host": "<host name>", "callback": "<URL>"} (callback optional).`,
      );
    }
    const { build, host, callback } = parsed.data;
    if (callback !== undefined) checkCallbackUrl(callback, deps.config.callbacks);
    const state = await deps.repo.get(build);
    if (!state) throw new PlugforgeError('build_not_found', `No build "${build}". Watch one of your builds by its id.`, { status: 404 });
    assertOwnBuild(req, state.record);
    if (!(await deps.store.has(state.record.source.sha256))) {
      throw new PlugforgeError('watched_build_gone', `The source of build ${build} is no longer stored: watch a newer build.`, {
        status: 409,
      });
    }
    const made = await watches.add(tenantOf(req), { build, host, ...(callback !== undefined ? { callback } : {}) });
    res.status(201).location(`/v1/watches/${made.id}`).json(made);
  });
  router.get('/v1/watches', async (req, res) => {
    res.json({ watches: await watches.list(tenantOf(req)) });
  });
  router.delete('/v1/watches/:id', async (req, res) => {
    if (!(await watches.remove(tenantOf(req), String(req.params.id)))) {
      throw new PlugforgeError(
        'watch_not_found',
        `No watch "${String(req.params.id).slice(0, 40)}" of yours; GET /v1/watches lists them.`,
        {
          status: 404,
        },
      );
    }
    res.status(204).end();
  });
  return router;
}
