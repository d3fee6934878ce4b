import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { TERMINAL, type BuildStatus } from '../contract/build-vocabulary.js';
import type { BuildDocument, PlugforgeClient } from './api-client.js';
import { downloadArtifacts } from './artifact-download.js';
import { formatBytes, formatTable, type DownloadResult } from './summary-table.js';
import type { TargetId } from '../contract/targets.js';

type Cell = NonNullable<BuildDocument['matrix']>['cells'][number];

/**
 * A matrix build (--hosts naming several releases: docs/hosts.md, "A matrix") followed to
 * its end: each cell's change of status printed as it comes, then every succeeded cell's
 * artifact into `out` under its release's name (checked against its sha256 like any
 * artifact), and the grid with a HOST column. Resolves to whether every cell built and
 * every artifact arrived intact, and the final document with what was downloaded.
 */
export async function followMatrix(
  client: PlugforgeClient,
  doc: BuildDocument,
  out: string,
  signal: AbortSignal,
  info: (line: string) => void,
): Promise<{ ok: boolean; final: BuildDocument; downloads: DownloadResult[] }> {
  const seen = new Map<string, string>();
  let final = doc;
  for (;;) {
    for (const c of final.matrix?.cells ?? []) {
      const key = `${c.host} ${c.target}`;
      if (seen.get(key) === c.status) continue;
      seen.set(key, c.status);
      if (c.status !== 'queued') info(`[${c.host} ${c.target}] ${c.status}${c.error ? ` (${c.error.code})` : ''}`);
    }
    if (TERMINAL.has(final.status as BuildStatus)) break;
    await sleep(1000, undefined, { signal });
    final = await client.build(doc.id, signal);
  }
  const downloads: DownloadResult[] = [];
  for (const c of final.matrix?.cells ?? []) {
    if (c.status !== 'succeeded' || !c.artifact) continue;
    // The cell's artifact is its build's target's, under the cell's name.
    const one = { ...final, id: c.build, targets: { [c.target]: { status: c.status, image: '', artifact: c.artifact } } } as BuildDocument;
    const got = await downloadArtifacts(client, one, out, { signal });
    downloads.push(...Object.values(got));
  }
  const built = (final.matrix?.cells ?? []).filter((c) => c.status === 'succeeded').length;
  const ok = final.status === 'succeeded' && downloads.length === built && downloads.every((d) => d.verified);
  return { ok, final, downloads };
}

/** The grid: one row per release and target, the file each became in `out`. */
export function matrixTable(doc: BuildDocument, downloads: DownloadResult[]): string {
  const rows = (doc.matrix?.cells ?? []).map((c: Cell) => {
    const d = c.artifact ? downloads.find((x) => path.basename(x.path) === c.artifact!.name) : undefined;
    return [
      c.host,
      c.target,
      c.error && c.status !== 'succeeded' ? `${c.status} (${c.error.code})` : c.status,
      c.status !== 'succeeded'
        ? '-'
        : !d
          ? 'not downloaded'
          : d.verified
            ? c.verify?.status === 'passed'
              ? 'ok'
              : `sha256 ok, verify ${c.verify?.status ?? 'skipped'}`
            : (d.problem ?? 'FAILED'),
      c.artifact ? formatBytes(c.artifact.size) : '-',
      c.artifact ? c.artifact.sha256.slice(0, 12) : '-',
      c.reusedFrom ? `built with ${c.reusedFrom}` : '',
    ];
  });
  const notes = (doc.matrix?.cells ?? [])
    .filter((c) => c.status !== 'succeeded' && c.error)
    .map((c) => `\n${c.host} ${c.target}: ${c.error!.code}: ${c.error!.message}\n`)
    .join('');
  return `${formatTable(['HOST', 'TARGET', 'STATUS', 'VERIFY', 'SIZE', 'SHA256', 'NOTE'], rows)}${notes}`;
}

/**
 * The matrix as one build document per host release (its targets are that release's cells,
 * its name says the release), for the CI reports: a JUnit testsuite, a summary table and
 * annotations per release (docs/ci.md).
 */
export function releaseDocuments(
  doc: BuildDocument,
  downloads: DownloadResult[],
): { host: string; doc: BuildDocument; downloads: Partial<Record<TargetId, DownloadResult>> }[] {
  const m = doc.matrix;
  if (!m) return [];
  return m.hosts.map((host) => {
    const cells = m.cells.filter((c) => c.host === host);
    const targets = Object.fromEntries(
      cells.map((c) => [
        c.target,
        {
          status: c.status,
          image: '',
          ...(c.error ? { error: c.error } : {}),
          ...(c.verify ? { verify: c.verify } : {}),
          ...(c.artifact ? { artifact: c.artifact } : {}),
        },
      ]),
    );
    const got = Object.fromEntries(
      cells.flatMap((c) => {
        const d = c.artifact && downloads.find((x) => path.basename(x.path) === c.artifact!.name);
        return d ? [[c.target, d]] : [];
      }),
    );
    const status = cells.every((c) => c.status === 'succeeded') ? 'succeeded' : doc.status === 'canceled' ? 'canceled' : 'failed';
    return { host, doc: { ...doc, name: `${doc.name} for ${host}`, status, targets } as BuildDocument, downloads: got };
  });
}
