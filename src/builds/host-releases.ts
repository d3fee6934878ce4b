import { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import type { HostReleaseBody } from '../contract/api-schemas.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { DescribedHostPart, HostBinary } from '../host/host-request.js';
import { hostModulesFromGoMod } from '../host/host-match.js';
import { DEFAULT_SOURCE_LIMITS, fetchReleaseDescription, type HostSource } from '../host/release-source.js';
import { withScripts } from '../redis/redis-scripts.js';
import type { BlobStore } from '../store/blob-store.js';
import type { HostBinaryRef } from './build-document.js';

/** Whose a host release is: a tenant's own, or the installation's (registered by the operator, seen by every tenant). */
export type HostScope = { kind: 'tenant'; tenant: string } | { kind: 'installation' };

/**
 * What a release keeps of what described it, as a blob of its own (docs/hosts.md): for
 * binaries and text, each part as describeHostBinaries read it, its executable replaced by
 * a reference to its fingerprints' blob (the executable itself is not kept); for a go.mod,
 * the go.mod and the Go release. A build against the release is resolved from exactly this.
 */
export type ReleaseDescription =
  | { from: 'binary' | 'text'; parts: { host: DescribedHostPart['host']; binary?: HostBinaryRef }[] }
  | { from: 'goMod'; goMod: string; go: string };

/** A release as Redis holds it: its document, and the blobs it keeps. */
export interface StoredHostRelease extends HostReleaseBody {
  descriptionBlob: string;
}

/** A description or a fingerprints blob is plugforge's own JSON, but read whole: capped all the same. */
const MAX_RELEASE_BLOB_BYTES = 16 * 1024 * 1024;

/**
 * Host releases by name and version, one Redis hash per scope (`pf:<queue>:hosts:tenant:<t>`,
 * `pf:<queue>:hosts:installation`, field `<name>@<version>`), their descriptions in the blob
 * store. Registering is one Lua step (exists? full? else added), so concurrent
 * registrations never overwrite one another nor pass the cap. Safe for several API
 * processes on one Redis. Removing is idempotent; the blobs are left to the retention sweep,
 * which keeps every blob a release refers to (blobs()). Errors: a Redis that cannot be
 * reached rejects (503 from the routes).
 */
/** The operator's sources of release descriptions, per host name, and the hosts they may be fetched from. */
export interface HostSources {
  sources: Record<string, HostSource>;
  fetchAllow: readonly string[];
}

export class HostReleases {
  private readonly resolving = new Map<string, Promise<StoredHostRelease | undefined>>();

  constructor(
    private readonly redis: Redis,
    private readonly queueName: string,
    private readonly store: BlobStore,
    /** How many releases one scope may hold (PLUGFORGE_HOSTS_MAX_PER_TENANT). */
    private readonly maxPerScope: number,
    /** Told of every release registered or resolved (the watches rebuild for it: docs/hosts.md, "Watches"). */
    private readonly onAdded?: (scope: HostScope, name: string, version: string) => void,
  ) {}

  private key(scope: HostScope): string {
    return scope.kind === 'installation' ? `pf:${this.queueName}:hosts:installation` : `pf:${this.queueName}:hosts:tenant:${scope.tenant}`;
  }

  /** Stores the description and registers the release; 409 host_release_exists, 429 too_many_host_releases. */
  async add(
    scope: HostScope,
    doc: Omit<HostReleaseBody, 'scope' | 'registeredAt'>,
    description: ReleaseDescription,
  ): Promise<HostReleaseBody> {
    const blob = await this.store.put(Readable.from([Buffer.from(JSON.stringify(description))]));
    const stored: StoredHostRelease = { ...doc, scope: scope.kind, registeredAt: new Date().toISOString(), descriptionBlob: blob.sha256 };
    const ref = `${doc.name}@${doc.version}`;
    const outcome = await withScripts(this.redis).pfAddHostRelease(this.key(scope), ref, JSON.stringify(stored), String(this.maxPerScope));
    if (outcome === 'exists') {
      throw new PlugforgeError(
        'host_release_exists',
        `Host release ${ref} is already registered ${scopeWords(scope)}. Remove it first (plugforge hosts rm ${ref}, or DELETE /v1/hosts/${doc.name}/${doc.version}), then register it again.`,
        { status: 409 },
      );
    }
    if (outcome === 'full') {
      throw new PlugforgeError(
        'too_many_host_releases',
        `${scopeWords(scope, true)} holds ${this.maxPerScope} host releases, as many as it may (PLUGFORGE_HOSTS_MAX_PER_TENANT). Remove releases no longer built against (plugforge hosts rm <name>@<version>), then register this one.`,
        { status: 429, details: { limit: this.maxPerScope } },
      );
    }
    this.onAdded?.(scope, doc.name, doc.version);
    return documentOf(stored);
  }

  async get(scope: HostScope, name: string, version: string): Promise<StoredHostRelease | undefined> {
    const text = await this.redis.hget(this.key(scope), `${name}@${version}`);
    return text ? (JSON.parse(text) as StoredHostRelease) : undefined;
  }

  /** The release a build of `tenant` names: the tenant's own first, then the installation's. */
  async find(tenant: string, name: string, version: string): Promise<StoredHostRelease | undefined> {
    return (await this.get({ kind: 'tenant', tenant }, name, version)) ?? (await this.get({ kind: 'installation' }, name, version));
  }

  /**
   * The release a build of `tenant` names, as find() does; one registered nowhere is
   * resolved from the operator's source for its host name when there is one (docs/hosts.md,
   * "Resolved on first use"): fetched once (one fetch per release at a time in this
   * process), then registered installation-wide. Undefined when there is no source.
   */
  async findOrResolve(tenant: string, name: string, version: string, sources: HostSources): Promise<StoredHostRelease | undefined> {
    const found = await this.find(tenant, name, version);
    const source = sources.sources[name];
    if (found || !source) return found;
    const ref = `${name}@${version}`;
    let resolving = this.resolving.get(ref);
    if (!resolving) {
      resolving = this.resolveFrom(name, version, source, sources.fetchAllow).finally(() => this.resolving.delete(ref));
      this.resolving.set(ref, resolving);
    }
    return resolving;
  }

  private async resolveFrom(
    name: string,
    version: string,
    source: HostSource,
    allow: readonly string[],
  ): Promise<StoredHostRelease | undefined> {
    const { goMod, go } = await fetchReleaseDescription(name, version, source, { allow, ...DEFAULT_SOURCE_LIMITS });
    // Read as a registered go.mod is: capped in lines and modules, refused when it is not one.
    const modules = hostModulesFromGoMod(goMod).modules.length;
    const doc = { name, version, go, from: 'goMod' as const, source: source.goMod.replaceAll('{version}', version), modules, targets: [] };
    try {
      await this.add({ kind: 'installation' }, doc, { from: 'goMod', goMod, go });
    } catch (err) {
      // Another API process resolved it first: theirs stands.
      if ((err as PlugforgeError).code !== 'host_release_exists') throw err;
    }
    return this.get({ kind: 'installation' }, name, version);
  }

  /** The releases of the given scopes, by name then version, optionally of one name. */
  async list(scopes: readonly HostScope[], name?: string): Promise<HostReleaseBody[]> {
    const out: HostReleaseBody[] = [];
    for (const scope of scopes) {
      for (const text of await this.redis.hvals(this.key(scope))) {
        const stored = JSON.parse(text) as StoredHostRelease;
        if (name === undefined || stored.name === name) out.push(documentOf(stored));
      }
    }
    return out.sort(
      (a, b) =>
        a.name.localeCompare(b.name) || a.version.localeCompare(b.version, 'en', { numeric: true }) || a.scope.localeCompare(b.scope),
    );
  }

  /** A tenant's releases of one name and the installation's, the tenant's own standing where both have a version. */
  async storedOf(tenant: string, name: string): Promise<StoredHostRelease[]> {
    const byVersion = new Map<string, StoredHostRelease>();
    for (const scope of [{ kind: 'installation' }, { kind: 'tenant', tenant }] as HostScope[]) {
      for (const text of await this.redis.hvals(this.key(scope))) {
        const stored = JSON.parse(text) as StoredHostRelease;
        if (stored.name === name) byVersion.set(stored.version, stored);
      }
    }
    return [...byVersion.values()].sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true }));
  }

  /** Removes a release of the scope; false when it had none of that name and version. */
  async remove(scope: HostScope, name: string, version: string): Promise<boolean> {
    return (await this.redis.hdel(this.key(scope), `${name}@${version}`)) === 1;
  }

  /** What a build against the release is resolved from: its description, each binary's fingerprints read back. */
  async describe(release: StoredHostRelease): Promise<{ parts: DescribedHostPart[] } | { goMod: string; go: string }> {
    const description = JSON.parse(await readBlob(this.store, release.descriptionBlob)) as ReleaseDescription;
    if (description.from === 'goMod') return { goMod: description.goMod, go: description.go };
    const parts: DescribedHostPart[] = [];
    for (const p of description.parts) {
      if (!p.binary) {
        parts.push({ host: p.host });
        continue;
      }
      const { target, sha256, size, go, fingerprintsBlob } = p.binary;
      const fingerprints = JSON.parse(await readBlob(this.store, fingerprintsBlob)) as HostBinary['fingerprints'];
      parts.push({ host: p.host, binary: { target, sha256, size, go, fingerprints } });
    }
    return { parts };
  }

  /** Every blob a registered release refers to (its description, its binaries' fingerprints): the retention sweep keeps them. */
  async *blobs(): AsyncIterable<string> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `pf:${this.queueName}:hosts:*`, 'COUNT', 500, 'TYPE', 'hash');
      cursor = next;
      for (const key of keys) {
        for (const text of await this.redis.hvals(key)) {
          const stored = JSON.parse(text) as StoredHostRelease;
          yield stored.descriptionBlob;
          const description = JSON.parse(await readBlob(this.store, stored.descriptionBlob).catch(() => '{}')) as Partial<
            Extract<ReleaseDescription, { parts: unknown }>
          >;
          for (const p of description.parts ?? []) if (p.binary) yield p.binary.fingerprintsBlob;
        }
      }
    } while (cursor !== '0');
  }
}

/** The document the API serves: the stored release without its blob references. */
export function documentOf(stored: StoredHostRelease): HostReleaseBody {
  const { descriptionBlob: _, ...doc } = stored;
  return doc;
}

function scopeWords(scope: HostScope, subject = false): string {
  if (scope.kind === 'installation') return subject ? 'The installation' : 'for the whole installation';
  return subject ? `Tenant ${scope.tenant}` : `for tenant ${scope.tenant}`;
}

async function readBlob(store: BlobStore, sha256: string): Promise<string> {
  const blob = await store.open(sha256);
  if (blob.size > MAX_RELEASE_BLOB_BYTES) {
    blob.stream.destroy();
    throw new PlugforgeError(
      'host_release_invalid',
      `A stored host release blob (${sha256}) is ${blob.size} bytes, more than plugforge ever writes for one.`,
      { status: 500 },
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of blob.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Each host binary's package fingerprints, as a blob of their own (a few KiB to a few
 * hundred): a build record or a release keeps only the reference, the worker reads them
 * for the target.
 */
export async function storeHostFingerprints(store: BlobStore, binaries: readonly HostBinary[]): Promise<HostBinaryRef[]> {
  const refs: HostBinaryRef[] = [];
  for (const b of binaries) {
    const blob = await store.put(Readable.from([Buffer.from(JSON.stringify(b.fingerprints))]));
    refs.push({
      target: b.target,
      sha256: b.sha256,
      size: b.size,
      go: b.go,
      packages: Object.keys(b.fingerprints).length,
      fingerprintsBlob: blob.sha256,
    });
  }
  return refs;
}
