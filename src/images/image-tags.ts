import { isImageTarget, isTargetId, type ImageTargetId } from '../contract/targets.js';
import { parseGoVersion, type GoVersion } from './go-version.js';
import type { GoSource } from './toolchain-module.js';

/** Labels plugforge puts on every builder image it builds. */
export const LABEL_GO_VERSION = 'org.plugforge.go.version';
export const LABEL_TARGET = 'org.plugforge.target';
/** Where the image's Go came from: debian or go-release (src/images/toolchain-module.ts). */
export const LABEL_GO_SOURCE = 'org.plugforge.go.source';
/** For go-release: the toolchain module and its verified hash, as a go.sum line states them. */
export const LABEL_GO_MODULE = 'org.plugforge.go.module';
/**
 * The revision of plugforge's Dockerfiles an image was built from. `images build` rebuilds
 * images of an older revision (2: qemu-user-static in the arm images, for the loading probe;
 * 3: the loading probe prebuilt in every image, PREBUILT_PROBE in src/verify/load-probe.ts;
 * 4: qemu-i386 10.x in the 386 image, for workers whose kernel cannot run 32-bit x86;
 * 5: where Go came from, labelled; 6: the standard library precompiled in plugin mode,
 * the seed of tenants' build caches, images/linux-amd64/precompile-std.sh).
 */
export const LABEL_REVISION = 'org.plugforge.image.revision';
export const IMAGE_REVISION = 6;

/** `<repo>:<exact go version>-<target>`, the gotify/build tag scheme. */
export function imageTag(repo: string, goVersion: string, target: ImageTargetId): string {
  return `${repo}:${goVersion}-${target}`;
}

/**
 * `<repo>:<exact go version>-<source>-<target>`: an image of the release from the other
 * source, kept beside the image of the usual tag (docs/images.md, "Both sources of one
 * release"). The catalog of releases does not read it; cross images start FROM
 * `<repo>:<go>-<source>-linux-amd64` with GO_VERSION=`<go>-<source>`.
 */
export function sourceImageTag(repo: string, goVersion: string, target: ImageTargetId, source: GoSource): string {
  return `${repo}:${goVersion}-${source}-${target}`;
}

export interface ParsedImageTag {
  repo: string;
  go: GoVersion;
  goText: string;
  target: ImageTargetId;
}

const TAG_RE = /^(.+):(\d+\.\d+\.\d+)-(linux-[a-z0-9-]+)$/;

/** Reads a repo tag of the builder scheme; undefined for any other tag. */
export function parseImageTag(repoTag: string): ParsedImageTag | undefined {
  const m = TAG_RE.exec(repoTag);
  if (!m) return undefined;
  const [, repo, goText, target] = m as unknown as [string, string, string, string];
  const go = parseGoVersion(goText);
  if (!go || !isTargetId(target) || !isImageTarget(target)) return undefined;
  return { repo, go, goText, target };
}

/** Where an image's Go came from, by its labels: images of plugforge's Dockerfiles from before the label were all Debian's. */
export function goSourceOfLabels(labels: Record<string, string>): GoSource | 'unknown' {
  const said = labels[LABEL_GO_SOURCE];
  if (said === 'debian' || said === 'go-release') return said;
  return Number(labels[LABEL_REVISION] ?? 0) > 0 ? 'debian' : 'unknown';
}
