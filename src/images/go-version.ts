import { PlugforgeError } from '../errors/plugforge-error.js';

/** Go minors the Dockerfiles can install from Debian's packages (see images/linux-amd64/install-go.sh). */
export const DEBIAN_GO_MINORS = ['1.21', '1.22', '1.23', '1.24', '1.25', '1.26', '1.27'] as const;

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
