import { Router, type Request, type Response } from 'express';
import { encodeCursor, listBuilds, parseListQuery } from '../builds/build-list.js';
import { buildDocument, buildSummary } from '../builds/build-view.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ApiDeps } from './api-deps.js';
import { expectsContinue } from './expect-continue.js';
import { IdempotencyKeys, idempotencyKeyOf, keyInUse } from './idempotency.js';
import type { SubmissionService } from './submission.js';
import { SIGNATURE_HEADER } from './callback-deliveries.js';
import { assertOwnBuild, tenantOf } from './tenancy.js';
import type { BuildListBody } from '../contract/api-schemas.js';

export function baseUrlOf(req: Request, publicUrl?: string): string {
  return publicUrl ?? `${req.protocol}://${req.get('host') ?? 'localhost'}`;
}

/** Loads a build the caller may see: 404 when there is none, 403 when it is another tenant's (see assertOwnBuild). */
export async function loadBuild(deps: ApiDeps, req: Request) {
  const id = String(req.params.id ?? '');
  const state = /^[a-z0-9]{1,40}$/.test(id) ? await deps.repo.get(id) : undefined;
  if (!state) {
    throw new PlugforgeError('build_not_found', `No build "${id}". Build ids are returned by POST /v1/builds.`, { status: 404 });
  }
  assertOwnBuild(req, state.record);
  return state;
}

export function buildRoutes(deps: ApiDeps, submissions: SubmissionService): Router {
  const router = Router();
  const { config, repo, queue } = deps;
  const keys = new IdempotencyKeys(deps.redis, `pf:${config.queueName}`, config.upload.totalMs);

  router.post('/v1/builds', async (req, res) => {
    // Whatever is refused before the body is read closes the connection: the client may still be sending it.
    const closing = async <T>(step: () => Promise<T>): Promise<T> => {
      try {
        return await step();
      } catch (err) {
        res.setHeader('Connection', 'close');
        throw err;
      }
    };
    const refuse = (err: PlugforgeError): never => {
      res.setHeader('Connection', 'close');
      throw err;
    };
    const key = await closing(async () => idempotencyKeyOf(req));
    if (key !== undefined) {
      const prior = await closing(() => keys.lookup(tenantOf(req), key));
      // The build this key already started, as it is now; its body is not read.
      if (prior && 'buildId' in prior) return replay(req, res, prior.buildId);
      if (prior) refuse(keyInUse());
    }
    const pre = await closing(() => submissions.precheck(req));
    if (key !== undefined && !(await keys.claim(pre.tenant, key, pre.id))) {
      await submissions.giveBack(pre);
      refuse(keyInUse());
    }
    try {
      // Everything that can be checked before the body has passed: now the client may send it.
      if (expectsContinue(req)) res.writeContinue();
      const received = await closing(() => submissions.receive(req, pre));
      const state = await submissions.accept(pre, received);
      if (key !== undefined) await keys.settle(pre.tenant, key, pre.id);
      res
        .status(202)
        .location(`/v1/builds/${state.record.id}`)
        .json(buildDocument(state, baseUrlOf(req, config.publicUrl)));
    } catch (err) {
      if (key !== undefined) await keys.release(pre.tenant, key, pre.id).catch(() => undefined);
      throw err;
    }
  });

  const replay = async (req: Request, res: Response, id: string) => {
    const state = await repo.get(id);
    if (!state) {
      throw new PlugforgeError(
        'build_not_found',
        `The build ${id} this Idempotency-Key started is gone (swept by retention); send the build again with a new key.`,
        { status: 404 },
      );
    }
    res.setHeader('Connection', 'close');
    res
      .status(202)
      .set('Idempotent-Replayed', 'true')
      .location(`/v1/builds/${id}`)
      .json(buildDocument(state, baseUrlOf(req, config.publicUrl)));
  };

  // The caller's tenant's builds, newest first (README, "GET /v1/builds").
  router.get('/v1/builds', async (req, res) => {
    const query = parseListQuery(req.query);
    const page = await listBuilds(repo, tenantOf(req), query);
    const base = baseUrlOf(req, config.publicUrl);
    res.json({
      builds: page.builds.map((s) => buildSummary(s, base)),
      ...(page.next ? { next: encodeCursor(page.next) } : {}),
    } satisfies BuildListBody);
  });

  router.get('/v1/builds/:id', async (req, res) => {
    const state = await loadBuild(deps, req);
    res.json(buildDocument(state, baseUrlOf(req, config.publicUrl)));
  });

  // The build's callback and each try of it (docs/hosts.md, "Callbacks").
  router.get('/v1/builds/:id/deliveries', async (req, res) => {
    const state = await loadBuild(deps, req);
    res.json({ deliveries: await deps.deliveries.list(state.record.id) });
  });

  // The secret the tenant's callbacks are signed with (X-Plugforge-Signature: sha256=<HMAC-SHA256 of the body>).
  router.get('/v1/callbacks/secret', async (req, res) => {
    res.json({ secret: await deps.deliveries.secretOf(tenantOf(req)), header: SIGNATURE_HEADER, algorithm: 'HMAC-SHA256' });
  });

  router.delete('/v1/builds/:id', async (req, res) => {
    const state = await loadBuild(deps, req);
    const at = new Date().toISOString();
    // A matrix build is canceled through its builds (docs/hosts.md, "A matrix").
    const ids = state.record.matrix ? state.record.matrix.builds.map((b) => b.build) : [state.record.id];
    let any = false;
    for (const id of ids) {
      const canceled = await repo.cancel(id, at);
      if (!canceled.length) continue;
      any = true;
      await queue.removeWaiting(id, canceled);
      await deps.cancel.publish(deps.redis, id);
      deps.log.info({ build: id, targets: canceled }, 'build canceled');
    }
    if (any && state.record.matrix) await repo.markCanceled(state.record.id, at);
    if (!any) {
      throw new PlugforgeError(
        'build_finished',
        `Build ${state.record.id} has already ended (${state.status}); there is nothing to cancel.`,
        { status: 409 },
      );
    }
    res.status(202).json(buildDocument((await repo.get(state.record.id))!, baseUrlOf(req, config.publicUrl)));
  });

  return router;
}
