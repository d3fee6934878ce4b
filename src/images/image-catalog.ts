import { PlugforgeError } from '../errors/plugforge-error.js';
import { imageTargetsOf, TARGET_IDS, type TargetId } from '../contract/targets.js';
import { compareGoVersions, formatGoVersion, goVersionMatches, requireGoVersion } from './go-version.js';
import { goSourceOfLabels, LABEL_REVISION, parseImageTag } from './image-tags.js';
import type { ToolchainImage } from '../contract/toolchain-image.js';
import type { ImageEngine } from '../runtime/image-engine.js';

export type { ToolchainImage };

/** Go versions × targets, as `GET /v1/toolchains` reports them. */
export interface ToolchainCatalog {
  repo: string;
  images: ToolchainImage[];
}

/**
 * Lists the builder images of `repo` on the engine, by tag (so gotify/build images count
 * too, they carry no plugforge labels). Newest Go first, then target order.
 */
export async function listToolchainImages(engine: ImageEngine, repo: string): Promise<ToolchainCatalog> {
  const summaries = await engine.listImages(repo);
  const images: ToolchainImage[] = [];
  for (const s of summaries) {
    for (const tag of s.tags) {
      const parsed = parseImageTag(tag);
      if (!parsed || parsed.repo !== repo) continue;
      const revision = Number(s.labels[LABEL_REVISION] ?? 0) || 0;
      images.push({ go: parsed.goText, target: parsed.target, image: tag, id: s.id, size: s.size, created: new Date(s.created * 1000).toISOString(), revision, source: goSourceOfLabels(s.labels) });
    }
  }
  images.sort((a, b) => compareGoVersions(requireGoVersion(b.go), requireGoVersion(a.go)) || TARGET_IDS.indexOf(a.target) - TARGET_IDS.indexOf(b.target));
  return { repo, images };
}

/** Exact Go versions in the catalog that have an image for every one of `targets`, newest first. */
export function completeVersions(catalog: ToolchainCatalog, targets: readonly TargetId[]): string[] {
  const byVersion = new Map<string, Set<TargetId>>();
  for (const img of catalog.images) {
    const set = byVersion.get(img.go) ?? new Set<TargetId>();
    set.add(img.target);
    byVersion.set(img.go, set);
  }
  return [...byVersion.entries()]
    .filter(([, set]) => imageTargetsOf(targets).every((t) => set.has(t)))
    .map(([v]) => v)
    .sort((a, b) => compareGoVersions(requireGoVersion(b), requireGoVersion(a)));
}

/**
 * Resolves a requested Go version ("1.22.12", or "1.22" = newest patch) to the exact
 * release whose images exist for all `targets`. Fails with 422 `go_version_unavailable`
 * naming what is available and the command that builds what is missing.
 */
export function resolveGoVersion(catalog: ToolchainCatalog, requested: string, targets: readonly TargetId[]): string {
  const want = requireGoVersion(requested, 'go');
  const candidates = completeVersions(catalog, targets).filter((v) => goVersionMatches(want, requireGoVersion(v)));
  const found = candidates[0];
  if (found) return found;
  const available = completeVersions(catalog, targets);
  const have = available.length ? `available for ${targets.join(', ')}: ${available.join(', ')}` : `no builder images of ${catalog.repo} are available for ${targets.join(', ')}`;
  throw new PlugforgeError(
    'go_version_unavailable',
    `No builder images for Go ${formatGoVersion(want)} (${have}). Build them with: plugforge images build --go ${formatGoVersion(want)}`,
    { status: 422, details: { available } },
  );
}
