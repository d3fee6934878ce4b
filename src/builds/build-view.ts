import { buildSettingsOf, type BuildState, type TargetState } from './build-document.js';
import type { TargetId } from '../contract/targets.js';
import type { BuildDocumentBody, BuildSummaryBody } from '../contract/api-schemas.js';

export interface TargetView extends Omit<TargetState, 'artifact'> {
  artifact?: TargetState['artifact'] & { url: string };
}

/** The build document of the REST API (README, "GET /v1/builds/:id"), from stored state. */
export function buildDocument(state: BuildState, baseUrl: string): BuildDocumentBody {
  const r = state.record;
  const targets: Partial<Record<TargetId, TargetView>> = {};
  for (const t of r.targetIds) {
    const s = state.targets[t];
    if (!s) continue;
    const { artifact, ...rest } = s;
    targets[t] = artifact ? { ...rest, artifact: { ...artifact, url: `${baseUrl}/v1/builds/${r.id}/artifacts/${t}` } } : rest;
  }
  return {
    ...summaryHead(state),
    source: { sha256: r.source.sha256, size: r.source.size, vendored: r.source.vendored, requirements: r.source.requirements },
    build: buildSettingsOf(r),
    verify: r.verifyMode ?? 'strict',
    ...(r.hostMatch ? { hostMatch: hostMatchView(r.hostMatch) } : {}),
    // Which targets are checked against which host executable (verify.fingerprints names it too).
    ...(r.hostBinaries?.length
      ? { hostBinaries: r.hostBinaries.map(({ target, sha256, size, go, packages }) => ({ target, sha256, size, go, packages })) }
      : {}),
    ...(state.images ? { images: state.images } : {}),
    ...(state.dependencies ? { dependencies: state.dependencies } : {}),
    targets,
    ...(r.matrix && state.cells
      ? {
          matrix: {
            hosts: r.matrix.hosts,
            builds: r.matrix.builds.map((b) => ({ ...b, url: `${baseUrl}/v1/builds/${b.build}` })),
            cells: state.cells.map(({ artifact, ...c }) =>
              artifact
                ? {
                    ...c,
                    artifact: { ...artifact, url: `${baseUrl}/v1/builds/${r.id}/artifacts/${c.target}?host=${encodeURIComponent(c.host)}` },
                  }
                : c,
            ),
          },
        }
      : {}),
    links: {
      self: `${baseUrl}/v1/builds/${r.id}`,
      logs: `${baseUrl}/v1/builds/${r.id}/logs`,
      artifacts: `${baseUrl}/v1/builds/${r.id}/artifacts.tar.gz`,
    },
  };
}

/** What a build document starts with, and a build in the list (GET /v1/builds) shows. */
function summaryHead(state: BuildState) {
  const r = state.record;
  return {
    id: r.id,
    status: state.status,
    go: r.go,
    goRequested: r.goRequested,
    name: r.name,
    mode: r.mode,
    host: r.host,
    module: r.source.module,
    createdAt: r.createdAt,
    ...(state.finishedAt ? { finishedAt: state.finishedAt } : {}),
    ...(state.canceledAt ? { canceledAt: state.canceledAt } : {}),
    // The identical build whose run this one shares (nothing ran for this one).
    ...(r.reusedFrom ? { reusedFrom: r.reusedFrom } : {}),
    ...(r.matrixOf ? { matrixOf: r.matrixOf } : {}),
  };
}

/** A build in the list of GET /v1/builds: the document's first fields, each target's status and verify result. */
export function buildSummary(state: BuildState, baseUrl: string): BuildSummaryBody {
  const targets: Partial<Record<TargetId, { status: TargetState['status']; verify?: NonNullable<TargetState['verify']>['status'] }>> = {};
  for (const t of state.record.targetIds) {
    const s = state.targets[t];
    if (s) targets[t] = { status: s.status, ...(s.verify ? { verify: s.verify.status } : {}) };
  }
  const cells = state.cells?.map((c) => ({
    host: c.host,
    target: c.target,
    status: c.status,
    ...(c.verify ? { verify: c.verify.status } : {}),
  }));
  return { ...summaryHead(state), targets, ...(cells ? { cells } : {}), links: { self: `${baseUrl}/v1/builds/${state.record.id}` } };
}

/** The host a build matches, without the full module list (its count is enough to read). */
function hostMatchView(h: NonNullable<BuildState['record']['hostMatch']>) {
  return {
    from: h.from,
    ...(h.go ? { go: h.go } : {}),
    trimpath: h.trimpath,
    tags: h.tags,
    modules: h.modules.length,
    aligned: h.aligned,
    notes: h.notes,
    ...(h.release ? { release: h.release } : {}),
  };
}
