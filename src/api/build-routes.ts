import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Router, type Request } from 'express';
import { needsModules, type BuildRecord, type HostBinaryRef } from '../builds/build-document.js';
import type { BlobStore } from '../store/blob-store.js';
import { parseManifest } from '../bundle/mattermost-bundle.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { compareGoVersions, parseGoVersion } from '../images/go-version.js';
import { completeVersions, type ToolchainCatalog } from '../images/image-catalog.js';
import { resolveOrPrepare } from '../images/on-demand.js';
import type { TargetId } from '../targets.js';
import { imageTag } from '../images/image-tags.js';
import { catalogFromWorkers, type ApiDeps } from './api-deps.js';
import { mergeOptionSources, nameFromModule, parseBuildOptions, type BuildOptions } from './build-options.js';
import { buildDocument } from '../builds/build-view.js';
import { receiveSource, uploadLimitsOf } from './source-upload.js';
import { assertOwnBuild, TenantLimits, tenantOf } from './tenancy.js';
import { goModMinor, goModNote, resolveHost, type HostBinary } from '../host/host-request.js';
import { expectsContinue } from './expect-continue.js';

export function newBuildId(): string {
  return `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
}

/** Whether a go.mod requires any module (a `require` directive, single or block). */
export function hasRequirements(goMod: string): boolean {
  return /^\s*require\b/m.test(goMod.replace(/\/\/.*$/gm, ''));
}

/**
 * A go.mod whose `go` line asks for a newer Go than the build's toolchain fails in Go with
 * "go.mod requires go >= X (running go Y; GOTOOLCHAIN=local)": refuse it before any work,
 * naming the toolchains that would do.
 */
export function checkGoDirective(goDirective: string | undefined, go: string, catalog: ToolchainCatalog, targets: readonly TargetId[]): void {
  const wanted = goDirective ? parseGoVersion(goDirective) : undefined;
  const have = parseGoVersion(go);
  if (!wanted || !have || compareGoVersions(have, { ...wanted, patch: wanted.patch ?? 0 }) >= 0) return;
  const enough = completeVersions(catalog, targets).filter((v) => compareGoVersions(parseGoVersion(v)!, { ...wanted, patch: wanted.patch ?? 0 }) >= 0);
  throw new PlugforgeError(
    'toolchain_too_old',
    `go.mod requires go >= ${goDirective} (the build would run go ${go}). ${enough.length ? `Toolchains that would do: ${enough.join(', ')}; ask for one with go=…` : `No toolchain here is new enough; build one with: plugforge images build --go ${wanted.major}.${wanted.minor}`}`,
    { status: 422, details: { requires: goDirective, available: enough } },
  );
}

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

/**
 * Each host binary's package fingerprints, as a blob of their own (a few KiB to a few
 * hundred): the record keeps only the reference, the worker reads them for the target.
 */
async function storeHostFingerprints(store: BlobStore, binaries: readonly HostBinary[]): Promise<HostBinaryRef[]> {
  const refs: HostBinaryRef[] = [];
  for (const b of binaries) {
    const blob = await store.put(Readable.from([Buffer.from(JSON.stringify(b.fingerprints))]));
    refs.push({ target: b.target, sha256: b.sha256, size: b.size, go: b.go, packages: Object.keys(b.fingerprints).length, fingerprintsBlob: blob.sha256 });
  }
  return refs;
}

async function failUnqueued(deps: ApiDeps, record: BuildRecord, cause: unknown): Promise<void> {
  const at = new Date().toISOString();
  const error = { code: 'enqueue_failed', message: `The build was recorded but could not be queued (${(cause as Error)?.message ?? cause}); submit it again.`, retryable: true };
  if (needsModules(record)) await deps.repo.patchDependencies(record.id, { status: 'failed', finishedAt: at, error });
  for (const t of record.targetIds) await deps.repo.patchTarget(record.id, t, { status: 'failed', finishedAt: at, error }, { force: true });
}

export function buildRoutes(deps: ApiDeps): Router {
  const router = Router();
  const { config, repo, queue, store, metrics } = deps;
  const limits = new TenantLimits(deps.redis, repo, config.queueName, config.tenancy.maxActiveBuilds);

  router.post('/v1/builds', async (req, res) => {
    if (deps.redis.status !== 'ready') throw new PlugforgeError('redis_unavailable', 'The build queue (Redis) is unreachable; try again shortly.', { status: 503, retryable: true });
    // Options in the query are checked before a byte of the body is read.
    const query = Object.fromEntries(Object.entries(req.query).map(([k, v]) => [k, v]));
    let options: BuildOptions | undefined;
    const early = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        res.setHeader('Connection', 'close');
        throw err;
      }
    };
    const isMultipart = (req.headers['content-type'] ?? '').startsWith('multipart/form-data');
    early(() => {
      if (!isMultipart) options = parseBuildOptions(query, config.defaultTargets);
      else parseBuildOptions(query, config.defaultTargets);
    });
    const catalog = catalogFromWorkers(await deps.registry.live(), config.imageRepo);
    if (options) {
      const opts = options;
      early(() => resolveOrPrepare(catalog, opts.go ?? config.defaultGo, opts.targets, config.images));
    }
    const tenant = tenantOf(req);
    try {
      await limits.check(tenant);
    } catch (err) {
      res.setHeader('Connection', 'close');
      throw err;
    }

    // Everything that can be checked before the body has passed: now the client may send it.
    if (expectsContinue(req)) res.writeContinue();
    let received;
    try {
      received = await receiveSource(req, store, uploadLimitsOf(config), (n) => metrics.uploadBytes.inc(n));
    } catch (err) {
      if (err instanceof PlugforgeError) metrics.uploadsRejected.inc({ code: err.code });
      res.setHeader('Connection', 'close');
      throw err;
    }
    const id = newBuildId();
    let reserved = false;
    let created: BuildRecord | undefined;
    try {
      const opts = options ?? parseBuildOptions(mergeOptionSources(query, received.fields), config.defaultTargets);
      const { summary } = received;
      // A host binary fixes the exact Go release; a host go.mod aligns the plugin's requirements.
      let host;
      try {
        host = resolveHost(opts, received.hostBinaries, summary, opts.targets);
      } finally {
        received.release();
      }
      const goRequested = host.go ?? opts.go ?? (host.goModLine ? goModMinor(host.goModLine) : config.defaultGo);
      // A release no worker has yet: its images are made first (the build is "preparing").
      const { go, prepare } = resolveOrPrepare(catalog, goRequested, opts.targets, config.images);
      if (host.goModLine && host.hostMatch) host.hostMatch.notes.push(goModNote(host.goModLine, go));
      // Once its images exist, a go directive the release cannot meet fails in go itself, with go's message.
      if (!prepare) checkGoDirective(summary.goDirective, go, catalog, opts.targets);
      // An exe build's manifest is what its bundle will carry: refuse a broken one now, not at download.
      if (opts.mode === 'exe' && summary.pluginManifest !== undefined) parseManifest(summary.pluginManifest);
      await limits.reserve(tenant, id);
      reserved = true;
      const hostBinaries = await storeHostFingerprints(store, host.hostBinaries);
      const record: BuildRecord = {
        id,
        tenant,
        createdAt: new Date().toISOString(),
        go,
        goRequested,
        name: opts.name ?? nameFromModule(summary.module),
        mode: opts.mode,
        host: opts.host,
        targetIds: opts.targets,
        source: { sha256: summary.sha256, size: summary.size, module: summary.module, vendored: summary.vendored, requirements: hasRequirements(summary.goMod) },
        build: host.build,
        verifyMode: opts.verify,
        ...(host.hostMatch ? { hostMatch: host.hostMatch } : {}),
        ...(hostBinaries.length ? { hostBinaries } : {}),
      };
      await store.adopt(received.tempPath, { sha256: summary.sha256, size: summary.size });
      // Modules first (once per build), then the targets; vendored or stdlib-only builds go straight to the targets.
      const withDependencies = needsModules(record);
      await repo.create(record, (t) => imageTag(config.imageRepo, go, t), withDependencies, prepare ? go : undefined);
      created = record;
      if (prepare) await queue.enqueueImages(record.id);
      else if (withDependencies) await queue.enqueueDependencies(record.id);
      else await queue.enqueue(record.id, record.targetIds);
      metrics.buildsSubmitted.inc();
      deps.log.info({ build: record.id, go, targets: record.targetIds, module: summary.module, bytes: received.compressedBytes }, 'build accepted');
      const state = await repo.get(record.id);
      res.status(202).location(`/v1/builds/${record.id}`).json(buildDocument(state!, baseUrlOf(req, config.publicUrl)));
    } catch (err) {
      if (err instanceof PlugforgeError) metrics.uploadsRejected.inc({ code: err.code });
      received.release();
      await store.discard(received.tempPath);
      // Recorded but not enqueued: nothing would ever run it, so it ends failed now (and
      // retention sweeps it like any finished build) instead of staying queued for ever.
      if (created) await failUnqueued(deps, created, err).catch((e: Error) => deps.log.error({ build: id, err: e.message }, 'a build that could not be queued could not be marked failed either'));
      if (reserved) await limits.release(tenant, id).catch(() => undefined);
      throw err;
    }
  });

  router.get('/v1/builds/:id', async (req, res) => {
    const state = await loadBuild(deps, req);
    res.json(buildDocument(state, baseUrlOf(req, config.publicUrl)));
  });

  router.delete('/v1/builds/:id', async (req, res) => {
    const state = await loadBuild(deps, req);
    const canceled = await repo.cancel(state.record.id, new Date().toISOString());
    if (!canceled.length) {
      throw new PlugforgeError('build_finished', `Build ${state.record.id} has already ended (${state.status}); there is nothing to cancel.`, { status: 409 });
    }
    await queue.removeWaiting(state.record.id, canceled);
    await deps.cancel.publish(deps.redis, state.record.id);
    deps.log.info({ build: state.record.id, targets: canceled }, 'build canceled');
    res.status(202).json(buildDocument((await repo.get(state.record.id))!, baseUrlOf(req, config.publicUrl)));
  });

  return router;
}
