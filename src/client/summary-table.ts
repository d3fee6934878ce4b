import { PHASES } from '../contract/build-vocabulary.js';
import { ALL_TARGET_IDS, type TargetId } from '../contract/targets.js';
import type { BuildDocument } from './api-client.js';

/** What became of one artifact on this machine (see artifact-download.ts). */
export interface DownloadResult {
  target: TargetId;
  /** Where it was written, as --out was given (relative paths stay relative). */
  path: string;
  /** sha256 of the bytes received. */
  sha256: string;
  size: number;
  /** The bytes match the build document's sha256 and size and the X-Plugforge-Sha256 header. */
  verified: boolean;
  /** Why it did not verify. */
  problem?: string;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Columns padded to their widest cell, two spaces apart. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return (
    [header, ...rows]
      .map((row) =>
        row
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** The build's targets in target-table order. */
export function targetsOf(doc: BuildDocument): TargetId[] {
  return ALL_TARGET_IDS.filter((t) => doc.targets[t] !== undefined);
}

/**
 * VERIFY: what the server proved of a succeeded target: "host binary ok" (its package
 * fingerprints match the host executable's), "loaded" (the probe host loaded it), "elf
 * passed" (the ELF header only), "skipped" (this worker could not load it: see the notes
 * under the table). With downloads, "ok" when that proof passed and the file here matches
 * the sha256 of the build document and of the header.
 */
function verifyCell(doc: BuildDocument, target: TargetId, downloads?: Partial<Record<TargetId, DownloadResult>>): string {
  const t = doc.targets[target];
  if (!t || t.status !== 'succeeded') return '-';
  const v = t.verify;
  const proof = !v
    ? 'elf skipped'
    : v.status === 'passed'
      ? v.method === 'fingerprints'
        ? 'host binary ok'
        : v.method === 'probe'
          ? 'loaded'
          : 'elf passed'
      : v.status === 'skipped'
        ? 'skipped'
        : `verify ${v.status}`;
  if (!downloads) return proof;
  const d = downloads[target];
  if (!d) return 'not downloaded';
  if (!d.verified) return d.problem ?? 'FAILED';
  return v?.status === 'passed' ? 'ok' : `sha256 ok, ${proof}`;
}

export function summaryTable(doc: BuildDocument, downloads?: Partial<Record<TargetId, DownloadResult>>): string {
  const rows = targetsOf(doc).map((target) => {
    const t = doc.targets[target]!;
    const a = t.artifact;
    return [
      target,
      t.error && t.status !== 'succeeded' && t.error.code !== t.status ? `${t.status} (${t.error.code})` : t.status,
      verifyCell(doc, target, downloads),
      a ? formatBytes(a.size) : '-',
      a ? a.sha256.slice(0, 12) : '-',
      t.durationMs !== undefined ? `${(t.durationMs / 1000).toFixed(1)} s` : '-',
    ];
  });
  return formatTable(['TARGET', 'STATUS', 'VERIFY', 'SIZE', 'SHA256', 'TIME'], rows);
}

/**
 * Where each target's time went (--timings): one column per phase the server reported, in
 * seconds; "-" for a phase a target did not have (a plugin built without the loading probe).
 * RUN is the target's duration, from when a worker took it (the queue wait is before it).
 */
export function timingsTable(doc: BuildDocument): string {
  const targets = targetsOf(doc).filter((t) => doc.targets[t]?.phases);
  if (!targets.length) return '\nno phase timings: the build did not run here (reused, or not run yet)\n';
  const phases = PHASES.filter((p) => targets.some((t) => doc.targets[t]!.phases![p] !== undefined));
  const seconds = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(2));
  const rows = targets.map((t) => [t, ...phases.map((p) => seconds(doc.targets[t]!.phases![p])), seconds(doc.targets[t]!.durationMs)]);
  return `\n${formatTable(['TARGET', ...phases.map((p) => p.toUpperCase()), 'RUN'], rows)}`;
}

/**
 * Each unsuccessful target's error in full (the compiler's output for compile_failed), and
 * why a succeeded target was not loaded (verify "skipped": the worker's limitation).
 */
export function failureNotes(doc: BuildDocument): string {
  let out = '';
  for (const target of targetsOf(doc)) {
    const t = doc.targets[target]!;
    if (t.status === 'succeeded' && t.verify?.status === 'skipped') out += `\n${target}: verify skipped: ${t.verify.message}\n`;
    if (t.status === 'succeeded' || !t.error) continue;
    const message = t.error.message
      .replace(/\n+$/, '')
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
    out += `\n${target}: ${t.status}${t.error.code !== t.status ? `, ${t.error.code}` : ''}:\n${message}\n`;
  }
  return out;
}
