import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BlobStore } from '../store/blob-store.js';
import type { TargetId } from '../contract/targets.js';
import type { BuildRecord, BuildState } from './build-document.js';
import type { BuildRepository } from './build-repository.js';

/** Whose builds a submission may take its artifacts from: the tenant's own (the default), any tenant's (finished ones only), or none. */
export type ReuseScope = 'tenant' | 'shared' | 'off';

/**
 * A build's reuse key: the sha256 of everything that determines its artifacts' bytes and
 * what is proven of them. The source (its sha256 after validation and re-packing), every
 * option that reaches the planner (Go release, name, mode, host profile, targets, trimpath
 * and tags, verify mode), the host description (host matching's result, the host binaries
 * by sha256), the exact image of each target (by image id, as the workers report it) and
 * plugforge's own code revision. Not the tenant: the scope decides whose builds are looked at.
 */
export function reuseKeyOf(record: BuildRecord, imageIds: Record<TargetId, string>, revision: string): string {
  const facts = {
    v: 1,
    revision,
    source: record.source.sha256,
    go: record.go,
    name: record.name,
    mode: record.mode,
    host: record.host,
    targets: record.targetIds.map((t) => [t, imageIds[t]]),
    build: record.build ?? null,
    verify: record.verifyMode ?? 'strict',
    hostMatch: record.hostMatch ?? null,
    hostBinaries: (record.hostBinaries ?? []).map((b) => [b.target, b.sha256]),
  };
  return createHash('sha256').update(JSON.stringify(facts)).digest('hex');
}

/**
 * The index of builds by reuse key (docs/decisions.md, "The same build is never run
 * twice"): `pf:<queue>:reuse:<tenant>:<key>` → the id of the tenant's last build with that
 * key that really ran, and with scope `shared` also `pf:<queue>:reuse:*:<key>` → any
 * tenant's. A submission whose key names a build of its own tenant that succeeded (every
 * artifact still in the store), or one still queued or running, becomes a build of its own
 * that shares that run (`reusedFrom`). Another tenant's build is taken only once it has
 * succeeded, and only when `sharedRelease` allows its Go release: a run in flight is never
 * shared across tenants, so no tenant's cancel, limits or queue position reach another's
 * build. Anything else (failed, canceled, swept) runs again and takes the key.
 * Concurrency: any number of API processes; two identical submissions at the same instant
 * may both run (each correct; the later one keeps the key). Idempotent: `remember`.
 * Errors: a Redis that cannot be reached rejects, and the submission fails with 503 like
 * any other Redis step of it.
 */
export class BuildReuse {
  constructor(
    private readonly redis: Redis,
    private readonly repo: BuildRepository,
    private readonly store: BlobStore,
    private readonly queueName: string,
    readonly scope: ReuseScope,
    /** Whether a build made with this Go release may be given to another tenant (e.g. one at or above a toolchain floor); absent: any release. */
    private readonly sharedRelease: (go: string) => boolean = () => true,
  ) {}

  private key(whose: string, key: string): string {
    return `pf:${this.queueName}:reuse:${whose}:${key}`;
  }

  /** The build whose run a submission of `tenant` with this key can share, if any. */
  async find(tenant: string, key: string): Promise<BuildState | undefined> {
    if (this.scope === 'off') return undefined;
    const own = await this.usable(await this.redis.get(this.key(tenant, key)));
    if (own || this.scope !== 'shared') return own;
    const any = await this.usable(await this.redis.get(this.key('*', key)));
    if (!any || any.record.tenant === tenant) return any;
    return any.status === 'succeeded' && this.sharedRelease(any.record.go) ? any : undefined;
  }

  /** The build `id` if its run can still be shared: not ended badly, not itself a sharer, its artifacts in the store once it succeeded. */
  private async usable(id: string | null): Promise<BuildState | undefined> {
    const state = id ? await this.repo.get(id) : undefined;
    if (!state || state.canceledAt || state.record.reusedFrom) return undefined;
    if (state.status === 'failed' || state.status === 'canceled') return undefined;
    if (state.status !== 'succeeded') return state;
    for (const t of state.record.targetIds) {
      const a = state.targets[t]?.artifact;
      if (!a || !(await this.store.has(a.sha256))) return undefined;
    }
    return state;
  }

  /** Notes that the build `id` runs for this key, for the submissions after it (as long as the retention of builds). */
  async remember(tenant: string, key: string, id: string, ttlMs: number): Promise<void> {
    if (this.scope === 'off') return;
    await this.redis.set(this.key(tenant, key), id, 'PX', ttlMs);
    if (this.scope === 'shared') await this.redis.set(this.key('*', key), id, 'PX', ttlMs);
  }
}
