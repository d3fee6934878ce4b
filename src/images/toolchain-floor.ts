import { PlugforgeError } from '../errors/plugforge-error.js';
import { compareGoVersions, formatGoVersion, minorOf, parseGoVersion, type GoVersion } from './go-version.js';

/**
 * The toolchain floor (docs/decisions.md, "The toolchain floor"): for each Go minor
 * plugforge builds with, the oldest patch in which `go build` of an upload, on linux with
 * cgo in plugforge's images, runs no code from it, and the advisories that line answers.
 * CVE-2023-29402, CVE-2023-29404 and CVE-2023-29405 were fixed in 1.19.10 and 1.20.5,
 * before 1.21.0. Advisories that need a program the images do not carry (pkg-config,
 * swig, a version control tool) or another GOOS do not raise it; the decision lists them.
 */
export const TOOLCHAIN_FLOOR: Readonly<Record<string, { release: string; answers: string }>> = {
  '1.21': { release: '1.21.2', answers: 'CVE-2023-39323 (//line directives get around cgo\'s flag allowlist, so go build runs code from the upload)' },
  '1.22': { release: '1.22.0', answers: 'CVE-2023-39323, CVE-2023-29404, CVE-2023-29405, CVE-2023-29402 (fixed before its first release)' },
  '1.23': { release: '1.23.0', answers: 'CVE-2023-39323, CVE-2023-29404, CVE-2023-29405, CVE-2023-29402 (fixed before its first release)' },
  '1.24': { release: '1.24.0', answers: 'CVE-2023-39323, CVE-2023-29404, CVE-2023-29405, CVE-2023-29402 (fixed before its first release)' },
  '1.25': { release: '1.25.0', answers: 'CVE-2023-39323, CVE-2023-29404, CVE-2023-29405, CVE-2023-29402 (fixed before its first release)' },
  '1.26': { release: '1.26.0', answers: 'CVE-2023-39323, CVE-2023-29404, CVE-2023-29405, CVE-2023-29402 (fixed before its first release)' },
  '1.27': { release: '1.27.0', answers: 'CVE-2023-39323, CVE-2023-29404, CVE-2023-29405, CVE-2023-29402 (fixed before its first release)' },
};

/**
 * Programs the advisories the floor does not count need (pkg-config: CVE-2025-61731; swig:
 * CVE-2026-27140; the version control tools: CVE-2025-4674, CVE-2025-68119). The image
 * check (src/images/image-builder.ts) refuses a builder image that carries one.
 */
export const FLOOR_ABSENT_TOOLS = ['pkg-config', 'swig', 'git', 'hg', 'svn', 'bzr', 'fossil'] as const;

/** The floor in force: plugforge's, with the operator's raised lines (PLUGFORGE_GO_FLOOR). */
export interface GoFloor {
  /** Minor → its oldest release allowed, and why. */
  lines: Record<string, { release: string; answers: string }>;
}

export const DEFAULT_GO_FLOOR: GoFloor = { lines: { ...TOOLCHAIN_FLOOR } };

const OLDEST_MINOR = Object.keys(TOOLCHAIN_FLOOR)[0]!;
const RAISED = 'the advisories this installation counts (PLUGFORGE_GO_FLOOR)';

/**
 * The floor with the operator's releases ("1.22.12,1.23.8"): each raises its minor's line,
 * none may lower one. Problems are returned one a line, for the start-up error.
 */
export function raiseGoFloor(text: string): { floor: GoFloor; problems: string[] } {
  const lines = { ...TOOLCHAIN_FLOOR };
  const problems: string[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const v = parseGoVersion(item);
    if (!v || v.patch === undefined) {
      problems.push(`${item} is not an exact Go release such as 1.22.12`);
      continue;
    }
    const own = TOOLCHAIN_FLOOR[minorOf(v)];
    const oldest = parseGoVersion(TOOLCHAIN_FLOOR[OLDEST_MINOR]!.release)!;
    if (own && compareGoVersions(v, parseGoVersion(own.release)!) < 0) {
      problems.push(`${item} is below plugforge's floor for Go ${minorOf(v)} (${own.release}, ${firstAdvisory(own.answers)}): the floor can be raised, never lowered`);
    } else if (!own && compareGoVersions(v, oldest) < 0) {
      problems.push(`${item} is older than every release plugforge builds with (the oldest is ${oldest.major}.${oldest.minor}): the floor can be raised, never lowered`);
    } else {
      lines[minorOf(v)] = { release: item, answers: RAISED };
    }
  }
  return { floor: { lines }, problems };
}

function firstAdvisory(answers: string): string {
  return /CVE-\d+-\d+/.exec(answers)?.[0] ?? answers;
}

/**
 * The one decision on whether a Go release may build here: an exact release below its
 * minor's floor, or of a minor older than all of them, is refused 422 go_release_unsafe,
 * naming the floor and what it answers. A bare minor ("1.22") passes: it becomes an exact
 * release (the newest images, or the one an image build installs), which is checked again.
 * `from` says where the release came from, e.g. "The host binary's build info (go1.21.0)".
 */
export function requireSafeGoRelease(release: string | GoVersion, floor: GoFloor = DEFAULT_GO_FLOOR, from?: string): void {
  const v = typeof release === 'string' ? parseGoVersion(release) : release;
  if (!v) return;
  const exact = formatGoVersion(v);
  const subject = from ?? `Go ${exact}`;
  const line = floor.lines[minorOf(v)];
  if (!line) {
    const oldest = parseGoVersion(floor.lines[OLDEST_MINOR]?.release ?? TOOLCHAIN_FLOOR[OLDEST_MINOR]!.release)!;
    if (compareGoVersions({ ...v, patch: v.patch ?? 0 }, oldest) >= 0) return;
    throw unsafe(subject, `is below plugforge's toolchain floor: Go ${minorOf(v)} is older than every release it builds with (the oldest is ${formatGoVersion(oldest)}, which answers ${TOOLCHAIN_FLOOR[OLDEST_MINOR]!.answers})`, formatGoVersion(oldest));
  }
  if (v.patch === undefined || compareGoVersions(v, parseGoVersion(line.release)!) >= 0) return;
  throw unsafe(subject, `is below the toolchain floor of Go ${minorOf(v)}, ${line.release}, which answers ${line.answers}`, line.release);
}

function unsafe(subject: string, why: string, floor: string): PlugforgeError {
  return new PlugforgeError('go_release_unsafe', `${subject} ${why}. Build with Go ${floor} or newer (a host must be rebuilt with it to load the plugin).`, {
    status: 422,
    details: { floor },
  });
}

/** Whether `release` is at or above the floor (what may be given across tenants: docs/decisions.md, "Speed"). */
export function isSafeGoRelease(release: string, floor: GoFloor = DEFAULT_GO_FLOOR): boolean {
  try {
    requireSafeGoRelease(release, floor);
    return true;
  } catch {
    return false;
  }
}
