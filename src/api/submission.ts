import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Request } from 'express';
import { needsModules, type BuildRecord, type BuildState } from '../builds/build-document.js';
import { HostReleases, storeHostFingerprints, type HostScope } from '../builds/host-releases.js';
import { nextStage } from '../builds/next-stage.js';
import { sameBytesKey } from '../builds/host-matrix.js';
import { enqueueStage } from '../queue/build-queue.js';
import { checkWebappBundle, parseManifest } from '../bundle/mattermost-bundle.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { goModMinor, goModNote, resolveDescribedHost, resolveHost, type HostBinary, type HostResolution } from '../host/host-request.js';
import { compareGoVersions, parseGoVersion } from '../images/go-version.js';
import { completeVersions, type ToolchainCatalog } from '../images/image-catalog.js';
import { imageTag } from '../images/image-tags.js';
import { isSafeGoRelease } from '../images/toolchain-floor.js';
import { resolveOrPrepare } from '../images/on-demand.js';
import { TARGETS, type TargetId } from '../contract/targets.js';
import { catalogFromWorkers, type ApiDeps } from './api-deps.js';
import { mergeOptionSources, nameFromModule, parseBuildOptions, type BuildOptions, type HostReleaseRef } from './build-options.js';
import { checkCallbackUrl } from './callback-url.js';
import { receiveSource, receiveStored, uploadLimitsOf, type ReceivedSource } from './source-upload.js';
import { OnDemandQuota } from './on-demand-quota.js';
import { TenantLimits, tenantOf } from './tenancy.js';
import { BuildReuse, reuseKeyOf } from '../builds/build-reuse.js';
import { codeRevision } from '../revision.js';

/** What a submission is known to be before its body is read. */
export interface Precheck {
  /** The build's id, whose place among the tenant's active builds the upload holds from here on. */
  id: string;
  tenant: string;
  query: Record<string, unknown>;
  /** The options, when all of them are in the query (not a multipart form). */
  options?: BuildOptions;
  catalog: ToolchainCatalog;
}

/**
 * A build submission (POST /v1/builds) in three steps, each the route's to call in turn:
 * `precheck` (everything knowable before the body: options in the query, the toolchain,
 * the tenant's limit, whose place the upload then holds), `receive` (the upload, streamed and checked while it arrives) and
 * `accept` (host matching, the record, the source stored, the jobs queued). What `accept`
 * has done is undone in reverse when a later part of it fails: a build is either queued,
 * or it leaves nothing behind but, once recorded, a failed record saying why. Safe for
 * concurrent submissions: the tenant's place is taken in one Redis step.
 */
export class SubmissionService {
  private readonly limits: TenantLimits;
  private readonly reuse: BuildReuse;
  private readonly onDemand: OnDemandQuota;
  private readonly hosts: HostReleases;

  constructor(
    private readonly deps: ApiDeps,
    onReleaseAdded?: (scope: HostScope, name: string, version: string) => void,
  ) {
    this.hosts = new HostReleases(deps.redis, deps.config.queueName, deps.store, deps.config.hosts.maxPerTenant, onReleaseAdded);
    this.limits = new TenantLimits(
      deps.redis,
      deps.repo,
      deps.config.queueName,
      deps.config.tenancy.maxActiveBuilds,
      deps.config.upload.totalMs,
    );
    this.onDemand = new OnDemandQuota(deps.redis, deps.config.queueName, deps.config.images.onDemandPerTenant);
    // Across tenants only builds made with a release at or above the floor are given (docs/decisions.md, "Speed").
    const floor = deps.config.images.floor;
    this.reuse = new BuildReuse(deps.redis, deps.repo, deps.store, deps.config.queueName, deps.config.reuse, (go) =>
      isSafeGoRelease(go, floor),
    );
  }

  async precheck(req: Request): Promise<Precheck> {
    const { config } = this.deps;
    if (this.deps.redis.status !== 'ready')
      throw new PlugforgeError('redis_unavailable', 'The build queue (Redis) is unreachable; try again shortly.', {
        status: 503,
        retryable: true,
      });
    // Options in the query are checked before a byte of the body is read; a form may add the rest.
    const query = Object.fromEntries(Object.entries(req.query).map(([k, v]) => [k, v]));
    const isMultipart = (req.headers['content-type'] ?? '').startsWith('multipart/form-data');
    const parsed = parseBuildOptions(query, config.defaultTargets);
    if (parsed.callback !== undefined) checkCallbackUrl(parsed.callback, config.callbacks);
    const options = isMultipart ? undefined : parsed;
    const catalog = catalogFromWorkers(await this.deps.registry.live(), config.imageRepo);
    if (options) resolveOrPrepare(catalog, options.go ?? config.defaultGo, options.targets, config.images);
    const tenant = tenantOf(req);
    // A release named in the query that is not registered is refused before the upload (accept reads it again).
    for (const ref of options?.hosts ?? [])
      if (!(await this.hosts.findOrResolve(tenant, ref.name, ref.version, config.hosts))) throw unknownRelease(tenant, ref);
    // An upload in flight counts as one of the tenant's active builds (SECURITY.md): N
    // uploads at once cannot pass its limit, each one's place taken in one Redis step.
    const id = newBuildId();
    await this.limits.reserve(tenant, id);
    return { id, tenant, query, catalog, ...(options ? { options } : {}) };
  }

  /**
   * A build of a source already stored, with the options of the build `from` and the host
   * release `release` (a watch's rebuild: docs/hosts.md, "Watches"): the tenant's limits,
   * the checks and the record as for an upload of the same source.
   */
  async submitStored(tenant: string, from: BuildRecord, release: string, callback?: string): Promise<BuildState> {
    const { config } = this.deps;
    const query: Record<string, string> = {
      targets: from.targetIds.join(','),
      name: from.name,
      mode: from.mode,
      host: from.host,
      verify: from.verifyMode ?? 'strict',
      hosts: release,
      ...(from.build?.strip ? { strip: 'true' } : {}),
      ...(from.build?.package ? { package: from.build.package } : {}),
      ...(callback !== undefined ? { callback } : {}),
    };
    const options = parseBuildOptions(query, config.defaultTargets);
    const catalog = catalogFromWorkers(await this.deps.registry.live(), config.imageRepo);
    const id = newBuildId();
    await this.limits.reserve(tenant, id);
    let received: ReceivedSource;
    try {
      received = await receiveStored(this.deps.store, from.source.sha256, uploadLimitsOf(config));
    } catch (err) {
      await this.limits.release(tenant, id).catch(() => undefined);
      throw err;
    }
    return this.accept({ id, tenant, query, options, catalog }, received);
  }

  /** Each target's builder image of Go release `go` (darwin and windows build in linux-amd64's). */
  private imageOf(go: string): (t: TargetId) => string {
    return (t) => imageTag(this.deps.config.imageRepo, go, TARGETS[t].image);
  }

  /** A submission that stops after its precheck (its Idempotency-Key is taken) gives its tenant's place back. */
  async giveBack(pre: Precheck): Promise<void> {
    await this.limits.release(pre.tenant, pre.id);
  }

  async receive(req: Request, pre: Precheck): Promise<ReceivedSource> {
    const { config, store, metrics } = this.deps;
    try {
      return await receiveSource(req, store, uploadLimitsOf(config), (n) => metrics.uploadBytes.inc(n), pre.tenant);
    } catch (err) {
      if (err instanceof PlugforgeError) metrics.uploadsRejected.inc({ code: err.code });
      await this.limits.release(pre.tenant, pre.id).catch(() => undefined);
      throw err;
    }
  }

  async accept(pre: Precheck, received: ReceivedSource): Promise<BuildState> {
    const { repo, store, metrics, log } = this.deps;
    const id = pre.id;
    const undo = new UndoStack();
    undo.push(() => this.limits.release(pre.tenant, id));
    undo.push(async () => {
      received.release();
      await store.discard(received.tempPath);
    });
    try {
      const opts = pre.options ?? parseBuildOptions(mergeOptionSources(pre.query, received.fields), this.deps.config.defaultTargets);
      if (opts.callback !== undefined) checkCallbackUrl(opts.callback, this.deps.config.callbacks);
      if (opts.hosts && opts.hosts.length > 1) return await this.acceptMatrix(pre, received, opts, opts.hosts, undo);
      const release = opts.hosts ? await this.releaseOf(pre.tenant, opts.hosts[0]!, opts, received) : undefined;
      const { record, prepare, hostBinaries, reuse } = this.recordOf(id, pre, opts, received, release);
      // A bundle's webapp comes from the upload: refuse one it would lack now, not at download.
      if (record.mode === 'exe' && received.summary.pluginManifest !== undefined)
        await checkWebappBundle(createReadStream(received.tempPath), parseManifest(received.summary.pluginManifest));
      if (prepare) undo.push(await this.onDemand.admit(pre.tenant, record.go));
      const refs = await storeHostFingerprints(store, hostBinaries);
      if (refs.length) record.hostBinaries = refs;
      await store.adopt(received.tempPath, { sha256: record.source.sha256, size: record.source.size });
      const shared = reuse ? await this.sharedRun(record, pre, prepare) : undefined;
      const withDependencies = needsModules(record) && !shared;
      await repo.create(record, this.imageOf(record.go), withDependencies, prepare ? record.go : undefined);
      // Recorded but not enqueued: nothing would ever run it, so it ends failed now (and
      // retention sweeps it like any finished build) instead of staying queued for ever.
      undo.push(() => failUnqueued(this.deps, record, undo.cause));
      if (shared) await this.noteShared(record, shared);
      // Its first job: images when they are missing, else modules (once per build), else its targets.
      await enqueueStage(
        this.deps.queue,
        record.id,
        record.targetIds,
        nextStage(record, { imagesReady: !prepare, dependenciesDone: false, ended: Boolean(shared) }),
      );
      if (record.reuseKey && !shared)
        await this.reuse.remember(pre.tenant, record.reuseKey, id, this.deps.config.retention.maxAgeMs || REUSE_KEEP_MS);
      if (opts.callback !== undefined) await this.deps.deliveries.awaitEnd(id, opts.callback);
      metrics.buildsSubmitted.inc();
      log.info(
        {
          build: id,
          go: record.go,
          targets: record.targetIds,
          module: record.source.module,
          bytes: received.compressedBytes,
          ...(shared ? { reusedFrom: shared.record.id } : {}),
        },
        'build accepted',
      );
      return (await repo.get(id))!;
    } catch (err) {
      if (err instanceof PlugforgeError) metrics.uploadsRejected.inc({ code: err.code });
      await undo.run(err, (e) => log.error({ build: id, err: e.message }, 'undoing a refused submission failed'));
      throw err;
    }
  }

  /** The build's record: options, host matching, the Go release (images to make first?); its host binaries to store; whether it takes part in reuse (reuse=off). */
  private recordOf(
    id: string,
    pre: Precheck,
    opts: BuildOptions,
    received: ReceivedSource,
    release: ReleaseOf | undefined,
  ): { record: BuildRecord; prepare: boolean; hostBinaries: HostBinary[]; reuse: boolean } {
    const { config } = this.deps;
    const { summary } = received;
    // A host binary fixes the exact Go release; a host go.mod aligns the plugin's requirements.
    let host: HostResolution;
    try {
      host = release ? resolveRelease(opts, release, summary) : resolveHost(opts, received.hostBinaries, summary, opts.targets);
    } finally {
      received.release();
    }
    // A release registered with its go.mod names its Go release, as the go option would.
    const releaseGo = release && 'go' in release.description ? release.description.go : undefined;
    const goRequested = host.go ?? releaseGo ?? opts.go ?? (host.goModLine ? goModMinor(host.goModLine) : config.defaultGo);
    const from = host.go ? `The host binary's build info (go${host.go})` : undefined;
    // A release no worker has yet: its images are made first (the build is "preparing").
    const { go, prepare } = resolveOrPrepare(pre.catalog, goRequested, opts.targets, config.images, from);
    if (host.goModLine && host.hostMatch) host.hostMatch.notes.push(goModNote(host.goModLine, go));
    // Once its images exist, a go directive the release cannot meet fails in go itself, with go's message.
    if (!prepare) checkGoDirective(summary.goDirective, go, pre.catalog, opts.targets);
    // An exe build's manifest is what its bundle will carry: refuse a broken one now, not at download.
    if (opts.mode === 'exe' && summary.pluginManifest !== undefined) parseManifest(summary.pluginManifest);
    const record: BuildRecord = {
      id,
      tenant: pre.tenant,
      createdAt: new Date().toISOString(),
      go,
      goRequested,
      name: opts.name ?? nameFromModule(summary.module),
      mode: opts.mode,
      host: opts.host,
      targetIds: opts.targets,
      source: {
        sha256: summary.sha256,
        size: summary.size,
        module: summary.module,
        vendored: summary.vendored,
        requirements: hasRequirements(summary.goMod),
      },
      build: { ...host.build, ...packageOf(summary.goDirs, opts.package), ...(opts.cgo ? { cgo: true as const } : {}) },
      verifyMode: opts.verify,
      ...(host.hostMatch ? { hostMatch: host.hostMatch } : {}),
    };
    return { record, prepare, hostBinaries: host.hostBinaries, reuse: opts.reuse !== 'off' };
  }

  /**
   * The registered host release a build names (hosts=), read back: the tenant's own, else
   * the installation's. 404 host_release_unknown; 400 host_described_twice beside an upload's.
   */
  private async releaseOf(tenant: string, named: HostReleaseRef, opts: BuildOptions, received: ReceivedSource): Promise<ReleaseOf> {
    const { name, version } = named;
    const ref = `${name}@${version}`;
    if (received.hostBinaries.length || opts.hostGoMod !== undefined) {
      throw new PlugforgeError(
        'host_described_twice',
        `The build names host release ${ref} (hosts=) and also sends ${received.hostBinaries.length ? 'hostBinary' : 'hostGoMod'}: describe the host once, by the release or by the upload.`,
      );
    }
    const stored = await this.hosts.findOrResolve(tenant, name, version, this.deps.config.hosts);
    if (!stored) throw unknownRelease(tenant, named);
    return { ref, description: await this.hosts.describe(stored) };
  }

  /**
   * A matrix (hosts= naming several releases: docs/hosts.md, "A matrix"): each release
   * described as if named alone, the releases grouped by the bytes they need, one ordinary
   * build per group, and the matrix build (`pre.id`) that runs nothing and shows their cells.
   * The matrix is recorded before its builds, so a build that fails to be queued shows in
   * its cells. Takes one place among the tenant's active builds.
   */
  private async acceptMatrix(
    pre: Precheck,
    received: ReceivedSource,
    opts: BuildOptions,
    named: HostReleaseRef[],
    undo: UndoStack,
  ): Promise<BuildState> {
    const { repo, store } = this.deps;
    const described: { ref: string; record: BuildRecord; prepare: boolean; hostBinaries: HostBinary[] }[] = [];
    for (const one of named) {
      const release = await this.releaseOf(pre.tenant, one, opts, received);
      described.push({ ref: release.ref, ...this.recordOf(newBuildId(), pre, opts, received, release) });
    }
    const groups = new Map<string, typeof described>();
    for (const d of described) {
      const key = sameBytesKey(d.record);
      groups.set(key, [...(groups.get(key) ?? []), d]);
    }
    const first = described[0]!.record;
    const { hostMatch: _h, ...shared } = first;
    const matrix: BuildRecord = {
      ...shared,
      id: pre.id,
      matrix: {
        hosts: described.map((d) => d.ref),
        builds: [...groups.values()].map((g) => ({ build: g[0]!.record.id, hosts: g.map((m) => m.ref) })),
      },
    };
    await store.adopt(received.tempPath, { sha256: first.source.sha256, size: first.source.size });
    await repo.create(matrix, this.imageOf(matrix.go));
    const admitted = new Set<string>();
    for (const members of groups.values()) {
      const { record, prepare, hostBinaries } = members[0]!;
      if (prepare && !admitted.has(record.go)) {
        undo.push(await this.onDemand.admit(pre.tenant, record.go));
        admitted.add(record.go);
      }
      const refs = await storeHostFingerprints(store, hostBinaries);
      if (refs.length) record.hostBinaries = refs;
      record.matrixOf = { build: pre.id, hosts: members.map((m) => m.ref) };
      if (members.length > 1) {
        const releaseBinaries = [];
        for (const m of members) {
          const binaries = m.record === record ? refs : await storeHostFingerprints(store, m.hostBinaries);
          if (binaries.length) releaseBinaries.push({ release: m.ref, binaries });
        }
        if (releaseBinaries.length) record.releaseBinaries = releaseBinaries;
      }
      await repo.create(record, this.imageOf(record.go), needsModules(record), prepare ? record.go : undefined);
      undo.push(() => failUnqueued(this.deps, record, undo.cause));
      await enqueueStage(
        this.deps.queue,
        record.id,
        record.targetIds,
        nextStage(record, { imagesReady: !prepare, dependenciesDone: false, ended: false }),
      );
    }
    if (opts.callback !== undefined) await this.deps.deliveries.awaitEnd(pre.id, opts.callback);
    this.deps.metrics.buildsSubmitted.inc();
    this.deps.log.info({ build: pre.id, hosts: matrix.matrix!.hosts, builds: matrix.matrix!.builds.length }, 'matrix accepted');
    return (await repo.get(pre.id))!;
  }

  /**
   * The identical build whose run this one can share (docs/decisions.md, "The same build is
   * never run twice"), noted in the record (`reuseKey`, `reusedFrom`). No key while the
   * images are still to be made, or when a target's image is not known by its id.
   */
  private async sharedRun(record: BuildRecord, pre: Precheck, prepare: boolean): Promise<BuildState | undefined> {
    if (prepare || this.reuse.scope === 'off') return undefined;
    const ids = {} as Record<TargetId, string>;
    for (const t of record.targetIds) {
      const image = pre.catalog.images.find((i) => i.image === imageTag(this.deps.config.imageRepo, record.go, TARGETS[t].image));
      if (!image?.id) return undefined;
      ids[t] = image.id;
    }
    record.reuseKey = reuseKeyOf(record, ids, codeRevision());
    const from = await this.reuse.find(pre.tenant, record.reuseKey);
    if (from) record.reusedFrom = from.record.id;
    return from;
  }

  /** What the log of a build that shares another's run says, target by target. */
  private async noteShared(record: BuildRecord, from: BuildState): Promise<void> {
    const how =
      from.status === 'succeeded'
        ? "its artifacts are this build's"
        : `it is ${from.status}: its results will be this build's (its logs: GET /v1/builds/${from.record.id}/logs)`;
    for (const t of record.targetIds) {
      await this.deps.repo.appendLog(
        record.id,
        t,
        `[plugforge] identical to build ${from.record.id} (same source, options, host and images): nothing runs again; ${how}\n`,
      );
    }
  }
}

function unknownRelease(tenant: string, { name, version }: { name: string; version: string }): PlugforgeError {
  return new PlugforgeError(
    'host_release_unknown',
    `No host release ${name}@${version} is registered for tenant ${tenant} or for the installation. Register it first with \`plugforge hosts add --name ${name} --version ${version} --binary <host executable>\` (POST /v1/hosts), or list the registered ones with \`plugforge hosts list\`.`,
    { status: 404 },
  );
}

/** A registered host release a build names, read back from the store. */
interface ReleaseOf {
  ref: string;
  description: Awaited<ReturnType<HostReleases['describe']>>;
}

/** The host as the release describes it, exactly as its upload would have (docs/hosts.md); the document names the release. */
/**
 * The `package` option (absent: the module root), when the upload has a package there (a
 * directory with .go files other than tests); else 422 package_not_found, before anything
 * builds, naming directories that have Go files.
 */
function packageOf(goDirs: readonly string[], option: string | undefined): { package?: string } {
  const pkg = option ?? '.';
  if (goDirs.includes(option ? option.slice(2) : '')) return option ? { package: option } : {};
  const some = goDirs.filter((d) => d !== '').slice(0, 5);
  throw new PlugforgeError(
    'package_not_found',
    `The upload has no Go package at ${pkg} (no .go file other than tests in that directory of the module).${some.length ? ` Directories with Go files: ${some.map((d) => `./${d}`).join(', ')}${goDirs.length > 6 ? ', …' : ''}.` : ''} Name the main package's directory relative to go.mod with the package option, such as package=./server.`,
    { status: 422 },
  );
}

function resolveRelease(opts: BuildOptions, release: ReleaseOf, plugin: { goMod: string; vendored: boolean }): HostResolution {
  const d = release.description;
  let host: HostResolution;
  if ('parts' in d) {
    host = resolveDescribedHost(opts, d.parts, plugin, opts.targets);
  } else {
    if (opts.go && opts.go !== d.go && !d.go.startsWith(`${opts.go}.`)) {
      throw new PlugforgeError(
        'host_go_conflict',
        `Host release ${release.ref} was registered with go ${d.go}, but the request asks for go ${opts.go}. Leave "go" out: it is taken from the release.`,
        { status: 422 },
      );
    }
    host = resolveHost({ ...opts, go: d.go, hostGoMod: d.goMod }, [], plugin, opts.targets);
  }
  if (host.hostMatch) host.hostMatch.release = release.ref;
  return host;
}

/** Steps to undo, run last first; each runs whatever the others do. */
class UndoStack {
  private readonly steps: (() => Promise<unknown>)[] = [];
  /** What made the undo run (for the records it writes). */
  cause: unknown;

  push(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  async run(cause: unknown, onError: (err: Error) => void): Promise<void> {
    this.cause = cause;
    for (let step = this.steps.pop(); step; step = this.steps.pop()) await step().catch(onError);
  }
}

/** How long a reuse key is kept when builds are never swept (PLUGFORGE_RETENTION_DAYS=0). */
const REUSE_KEEP_MS = 30 * 24 * 3600_000;

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
export function checkGoDirective(
  goDirective: string | undefined,
  go: string,
  catalog: ToolchainCatalog,
  targets: readonly TargetId[],
): void {
  const wanted = goDirective ? parseGoVersion(goDirective) : undefined;
  const have = parseGoVersion(go);
  if (!wanted || !have || compareGoVersions(have, { ...wanted, patch: wanted.patch ?? 0 }) >= 0) return;
  const enough = completeVersions(catalog, targets).filter(
    (v) => compareGoVersions(parseGoVersion(v)!, { ...wanted, patch: wanted.patch ?? 0 }) >= 0,
  );
  throw new PlugforgeError(
    'toolchain_too_old',
    `go.mod requires go >= ${goDirective} (the build would run go ${go}). ${enough.length ? `Toolchains that would do: ${enough.join(', ')}; ask for one with go=…` : `No toolchain here is new enough; build one with: plugforge images build --go ${wanted.major}.${wanted.minor}`}`,
    { status: 422, details: { requires: goDirective, available: enough } },
  );
}

async function failUnqueued(deps: ApiDeps, record: BuildRecord, cause: unknown): Promise<void> {
  const at = new Date().toISOString();
  const error = {
    code: 'enqueue_failed',
    message: `The build was recorded but could not be queued (${(cause as Error)?.message ?? cause}); submit it again.`,
    retryable: true,
  };
  if (needsModules(record)) await deps.repo.patchDependencies(record.id, { status: 'failed', finishedAt: at, error });
  for (const t of record.targetIds) await deps.repo.patchTarget(record.id, t, { status: 'failed', finishedAt: at, error }, { force: true });
}
