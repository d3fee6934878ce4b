import { PlugforgeError } from '../errors/plugforge-error.js';

/**
 * The exact release Debian packages for each Go minor, from the suite images/linux-amd64/
 * install-go.sh takes it from (the table in docs/images.md). An exact request for one of these is
 * built from Debian; any other exact release comes from the Go toolchain module through a
 * module proxy (src/images/toolchain-module.ts). Should Debian move a minor on, its image
 * build says which release it got (install-go.sh) and the table is updated here.
 */
export const DEBIAN_GO_RELEASES = {
  '1.21': '1.21.13',
  '1.22': '1.22.12',
  '1.23': '1.23.5',
  '1.24': '1.24.4',
  '1.25': '1.25.12',
  '1.26': '1.26.11',
  '1.27': '1.27.4',
} as const;

/** Go minors the Dockerfiles can install from Debian's packages. */
export const DEBIAN_GO_MINORS = Object.keys(DEBIAN_GO_RELEASES) as (keyof typeof DEBIAN_GO_RELEASES)[];

export interface GoVersion {
  major: number;
  minor: number;
  /** Absent for a minor such as "1.22". */
  patch?: number;
}

const VERSION_RE = /^(?:go)?(\d+)\.(\d+)(?:\.(\d+))?$/;

/** Parses "1.22", "1.22.12" or "go1.22.12"; undefined for anything else (rc/beta included). */
export function parseGoVersion(text: string): GoVersion | undefined {
  const m = VERSION_RE.exec(text.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), ...(m[3] === undefined ? {} : { patch: Number(m[3]) }) };
}

export function formatGoVersion(v: GoVersion): string {
  return v.patch === undefined ? `${v.major}.${v.minor}` : `${v.major}.${v.minor}.${v.patch}`;
}

export function minorOf(v: GoVersion): string {
  return `${v.major}.${v.minor}`;
}

/** Orders versions ascending; a bare minor sorts before its patches. */
export function compareGoVersions(a: GoVersion, b: GoVersion): number {
  return a.major - b.major || a.minor - b.minor || (a.patch ?? -1) - (b.patch ?? -1);
}

/** Whether `candidate` (exact) satisfies `requested` (exact, or a minor meaning any patch). */
export function goVersionMatches(requested: GoVersion, candidate: GoVersion): boolean {
  if (requested.major !== candidate.major || requested.minor !== candidate.minor) return false;
  return requested.patch === undefined || requested.patch === candidate.patch;
}

export function requireGoVersion(text: string, what = 'Go version'): GoVersion {
  const v = parseGoVersion(text);
  if (!v) {
    throw new PlugforgeError('invalid_go_version', `${what} "${text}" is not a Go release such as 1.22 or 1.22.12.`, { status: 400 });
  }
  return v;
}
