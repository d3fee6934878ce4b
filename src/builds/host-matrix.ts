import { createHash } from 'node:crypto';
import { TERMINAL, type BuildStatus } from '../contract/build-vocabulary.js';
import type { TargetId } from '../contract/targets.js';
import {
  buildSettingsOf,
  type ArtifactInfo,
  type BuildRecord,
  type BuildState,
  type MatrixRecord,
  type TargetError,
  type VerifyResult,
} from './build-document.js';

/** One build of a matrix and the releases it stands for (the first describes it). */
type MatrixGroup = MatrixRecord['builds'][number];

/** A (release, target) pair of a matrix, as its document shows it. */
export interface MatrixCell {
  host: string;
  target: TargetId;
  /** The build that ran it. */
  build: string;
  status: BuildStatus;
  /** The release of the same build whose description it ran with, when not this cell's own. */
  reusedFrom?: string;
  artifact?: ArtifactInfo;
  verify?: VerifyResult;
  error?: TargetError;
  finishedAt?: string;
}

/**
 * What decides the bytes a release's description builds, beside what every build of one
 * submission shares (source, name, mode, targets, options): the exact Go release, the
 * plugin's build settings, the aligned go.mod, the host's architecture settings, and the
 * host's module paths (the loading probe is built with them). Two releases with the same
 * key are built once.
 */
export function sameBytesKey(record: BuildRecord): string {
  const h = record.hostMatch;
  const facts = {
    go: record.go,
    build: buildSettingsOf(record),
    goMod: h?.goMod ?? null,
    trimpath: h?.trimpath ?? null,
    tags: h?.tags ?? null,
    arch: h?.arch ?? null,
    archs: h?.archs ?? null,
    modules: (h?.modules ?? []).map((m) => m.path).sort(),
  };
  return createHash('sha256').update(JSON.stringify(facts)).digest('hex');
}

/** gotify's template's file name: `<name>-linux-<arch>-for-<host>-v<version>.so` (executables without `.so`). */
export function matrixArtifactName(name: string, target: TargetId, release: string, mode: BuildRecord['mode']): string {
  const at = release.lastIndexOf('@');
  return `${name}-${target}-for-${release.slice(0, at)}-v${release.slice(at + 1)}${mode === 'plugin' ? '.so' : ''}`;
}

/**
 * The cells of a matrix from its builds' states (absent: swept). A cell of a group's first
 * release is that build's target; another release's cell takes the same artifact, judged
 * by that release's own fingerprint check (verify.releases), which the build made against
 * each release's executable of the target.
 */
export function matrixCells(record: BuildRecord, builds: Map<string, BuildState | undefined>): MatrixCell[] {
  const matrix = record.matrix!;
  const cells: MatrixCell[] = [];
  for (const host of matrix.hosts) {
    const group = matrix.builds.find((g) => g.hosts.includes(host))!;
    const state = builds.get(group.build);
    for (const target of record.targetIds) {
      const cell = cellOf(record, state, group, host, target);
      cells.push(group.hosts[0] === host ? cell : { ...cell, reusedFrom: group.hosts[0]! });
    }
  }
  return cells;
}

function cellOf(record: BuildRecord, state: BuildState | undefined, group: MatrixGroup, host: string, target: TargetId): MatrixCell {
  const base = { host, target, build: group.build };
  if (!state) {
    const message = `Build ${group.build}, which ran this cell, is gone (swept by retention); submit the matrix again.`;
    return { ...base, status: 'failed', error: { code: 'matrix_build_gone', message } };
  }
  const t = state.targets[target];
  if (!t) return { ...base, status: state.status };
  if (!TERMINAL.has(t.status)) return { ...base, status: t.status };
  const artifact = t.artifact ? { ...t.artifact, name: matrixArtifactName(record.name, target, host, record.mode) } : undefined;
  const own = t.verify?.releases?.find((c) => c.release === host);
  const ended = { ...(t.finishedAt ? { finishedAt: t.finishedAt } : {}) };
  // Not judged by release (one release's executable, or none of this target): the target's end is the cell's.
  if (!own || !t.verify) {
    return {
      ...base,
      status: t.status,
      ...ended,
      ...(artifact ? { artifact } : {}),
      ...(t.verify ? { verify: t.verify } : {}),
      ...(t.error ? { error: t.error } : {}),
    };
  }
  const fingerprints = { hostBinary: own.hostBinary, go: own.go, compared: own.compared, differing: own.differing };
  if (own.status === 'passed') {
    // This release's executable takes the artifact; what else the build found (the probe) stands.
    const verify: VerifyResult = { ...t.verify, fingerprints, message: replaceFingerprintSentence(t.verify, own.message) };
    return { ...base, status: t.status, ...ended, ...(artifact ? { artifact } : {}), verify, ...(t.error ? { error: t.error } : {}) };
  }
  const modules = modulesOf(state.record, own.differing);
  const message = `${artifact?.name ?? target}: ${own.message}${modules ? `; host release ${host} links other content for ${modules}` : ''}`;
  const verify: VerifyResult = { status: 'failed', method: 'fingerprints', message: own.message, fingerprints };
  // verify=warn: offered anyway, the failed verification kept (as for a build's own target).
  if (record.verifyMode === 'warn' && t.status === 'succeeded')
    return {
      ...base,
      status: 'succeeded',
      ...ended,
      ...(artifact ? { artifact } : {}),
      verify: { ...verify, message: `${verify.message} (verify=warn)` },
    };
  return { ...base, status: 'failed', ...ended, verify, error: { code: 'package_mismatch', message } };
}

/** The build's verify message with its fingerprint sentence (the first release's) replaced by this release's. */
function replaceFingerprintSentence(verify: VerifyResult, own: string): string {
  const first = verify.releases?.find((c) => c.status === 'passed')?.message;
  return first && verify.message.includes(first) ? verify.message.replace(first, own) : `${verify.message}; ${own}`;
}

/** The modules (path and version, as the host links them) that hold the differing packages, for the message. */
function modulesOf(record: BuildRecord, packages: string[]): string {
  const modules = record.hostMatch?.modules ?? [];
  const named = new Map<string, string>();
  for (const p of packages) {
    const m = modules.filter((m) => p === m.path || p.startsWith(`${m.path}/`)).sort((a, b) => b.path.length - a.path.length)[0];
    if (m) named.set(m.path, `module ${m.path} ${m.version}`);
  }
  return [...named.values()].join(', ');
}

/**
 * The matrix build's status from its cells: canceled once canceled; while any cell is
 * unfinished, preparing (a build of it is), queued (none started) or running; then
 * succeeded only if every cell did, canceled if one was, else failed.
 */
export function matrixStatus(cells: MatrixCell[], canceled: boolean, builds: Map<string, BuildState | undefined>): BuildStatus {
  if (canceled) return 'canceled';
  if (cells.some((c) => !TERMINAL.has(c.status))) {
    if ([...builds.values()].some((b) => b?.status === 'preparing')) return 'preparing';
    return cells.every((c) => c.status === 'queued') ? 'queued' : 'running';
  }
  return cells.every((c) => c.status === 'succeeded') ? 'succeeded' : cells.some((c) => c.status === 'canceled') ? 'canceled' : 'failed';
}
