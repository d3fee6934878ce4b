import { PlugforgeError } from '../errors/plugforge-error.js';
import type { TargetId } from '../contract/targets.js';
import { formatGoVersion, minorOf, requireGoVersion } from './go-version.js';
import { resolveGoVersion, type ToolchainCatalog } from './image-catalog.js';
import { requireSafeGoRelease, type GoFloor } from './toolchain-floor.js';

/** The slice of the configuration images on demand reads (PLUGFORGE_IMAGES_ON_DEMAND*, the Go floor). */
export interface OnDemandImages {
  onDemand: boolean;
  onDemandGo: readonly string[];
  floor: GoFloor;
}

/**
 * The Go release a build runs with: the exact release of images that exist, or, with
 * images on demand (docs/decisions.md, "Images on demand"), the release asked for, whose
 * images a worker makes before the build runs (`prepare`). A release the operator did not
 * allow (PLUGFORGE_IMAGES_ON_DEMAND_GO), or any when on demand is off, is refused as
 * before: 422 go_version_unavailable, naming what exists and how to build the rest. A
 * release below the toolchain floor, asked for or resolved to, is refused 422
 * go_release_unsafe; `from` names where it came from (a host binary's build info …).
 */
export function resolveOrPrepare(catalog: ToolchainCatalog, requested: string, targets: readonly TargetId[], images: OnDemandImages, from?: string): { go: string; prepare: boolean } {
  requireSafeGoRelease(requested, images.floor, from);
  try {
    const go = resolveGoVersion(catalog, requested, targets);
    if (go !== requested) requireSafeGoRelease(go, images.floor, `Go ${go}, the newest ${requested} here,`);
    return { go, prepare: false };
  } catch (err) {
    if (!(err instanceof PlugforgeError) || err.code !== 'go_version_unavailable') throw err;
    const wanted = requireGoVersion(requested, 'go');
    if (images.onDemand && images.onDemandGo.includes(minorOf(wanted))) return { go: formatGoVersion(wanted), prepare: true };
    if (!images.onDemand) throw err;
    throw new PlugforgeError('go_version_unavailable', `${err.message}. Images are made on demand only for Go ${images.onDemandGo.join(', ')} here (PLUGFORGE_IMAGES_ON_DEMAND_GO).`, { status: 422, ...(err.details ? { details: err.details } : {}) });
  }
}
