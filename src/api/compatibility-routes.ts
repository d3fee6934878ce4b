import { Router } from 'express';
import { HostReleases, type StoredHostRelease } from '../builds/host-releases.js';
import type { CompatibilityBody } from '../contract/api-schemas.js';
import { isTargetId, type TargetId } from '../contract/targets.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { BlobStore } from '../store/blob-store.js';
import { compareFingerprints, readPackageFingerprints, type PackageFingerprints } from '../verify/package-fingerprints.js';
import type { ApiDeps } from './api-deps.js';
import { loadBuild } from './build-routes.js';
import { HOST_NAME_RE } from '../contract/api-schemas.js';
import { tenantOf } from './tenancy.js';

/** Artifacts' fingerprints already read, by sha256 (an artifact's bytes never change). */
const CACHE_SIZE = 64;

/**
 * GET /v1/builds/:id/artifacts/:target/compatibility?host=<name> (docs/hosts.md, "Which
 * releases an artifact loads into"): the artifact's package fingerprints compared with
 * those of the target's executable of every release of that host the caller can build
 * against (its own, then the installation's). Equal on every package both hold: the release
 * loads it; any package differing: it refuses it, as plugin.Open would. Releases registered
 * by their go.mod, or without this target's executable, hold no fingerprints to compare.
 */
export function compatibilityRoutes(deps: ApiDeps): Router {
  const router = Router();
  const releases = new HostReleases(deps.redis, deps.config.queueName, deps.store, deps.config.hosts.maxPerTenant);
  const fingerprints = new ArtifactFingerprints(deps.store, deps.config.build.maxArtifactBytes);

  router.get('/v1/builds/:id/artifacts/:target/compatibility', async (req, res) => {
    const state = await loadBuild(deps, req);
    const target = String(req.params.target);
    const artifact = isTargetId(target) ? state.targets[target]?.artifact : undefined;
    if (!isTargetId(target) || !artifact) {
      throw new PlugforgeError(
        'artifact_not_found',
        `Build ${state.record.id} has no artifact for "${target}"; only a target that built has one.`,
        {
          status: 404,
        },
      );
    }
    const host = String(req.query.host ?? '');
    if (!HOST_NAME_RE.test(host)) {
      throw new PlugforgeError('invalid_option', 'Name the host to compare with: ?host=<name>, as it is registered (such as gotify).');
    }
    const plugin = await fingerprints.of(artifact.sha256);
    const body: CompatibilityBody = {
      build: state.record.id,
      target,
      sha256: artifact.sha256,
      host,
      loadsInto: [],
      refusedBy: [],
      notCompared: [],
    };
    for (const release of await releases.storedOf(tenantOf(req), host)) await judge(releases, release, target, plugin, body);
    res.json(body);
  });

  return router;
}

/** Puts one release in the answer's list it belongs to. */
async function judge(
  releases: HostReleases,
  release: StoredHostRelease,
  target: TargetId,
  plugin: PackageFingerprints,
  body: CompatibilityBody,
) {
  const ref = `${release.name}@${release.version}`;
  const description = await releases.describe(release);
  if (!('parts' in description)) {
    body.notCompared.push({
      release: ref,
      reason: 'registered by its go.mod, which holds no package fingerprints: register its executables to compare',
    });
    return;
  }
  const binary = description.parts.find((p) => p.binary?.target === target)?.binary;
  if (!binary) {
    body.notCompared.push({ release: ref, reason: `no ${target} executable registered` });
    return;
  }
  const { compared, differing } = compareFingerprints(binary.fingerprints, plugin);
  if (compared > 0 && differing.length === 0) body.loadsInto.push(ref);
  else body.refusedBy.push({ release: ref, differing: differing.slice(0, 20) });
}

/** An artifact's package fingerprints, read from the store once per sha256 (capped in bytes, and in work by readPackageFingerprints). */
class ArtifactFingerprints {
  private readonly cache = new Map<string, PackageFingerprints>();

  constructor(
    private readonly store: BlobStore,
    private readonly maxBytes: number,
  ) {}

  async of(sha256: string): Promise<PackageFingerprints> {
    const known = this.cache.get(sha256);
    if (known) return known;
    const blob = await this.store.open(sha256);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of blob.stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.maxBytes) {
        blob.stream.destroy();
        throw new PlugforgeError('artifact_too_large', `The artifact is larger than ${this.maxBytes} bytes; it is not read.`, {
          status: 413,
        });
      }
      chunks.push(chunk);
    }
    const read = readPackageFingerprints(Buffer.concat(chunks));
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(sha256, read);
    return read;
  }
}
