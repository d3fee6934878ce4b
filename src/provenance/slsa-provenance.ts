import { buildSettingsOf, type ArtifactInfo, type BuildState, type VerifyResult } from '../builds/build-document.js';
import { PACKAGE_VERSION } from '../revision.js';
import type { TargetId } from '../contract/targets.js';
import type { GoBuildInfo, GoModule } from '../verify/go-buildinfo.js';

/**
 * A build's SLSA v1 provenance (https://slsa.dev/spec/v1.0/provenance) as an in-toto
 * Statement v1, made from the stored build state and each artifact's own Go build info.
 * Pure: the same build gives the same statement, byte for byte (docs/decisions.md,
 * "Provenance is made when asked").
 */
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** plugforge's build type: what externalParameters hold and how a build runs (docs/provenance.md, "Verify what you downloaded"). */
export const PLUGFORGE_BUILD_TYPE = 'https://plugforge.dev/build/v1';

/** The file a build's provenance is kept in, beside its artifacts (artifacts.tar.gz, `plugforge build --out`): the envelope on one line. */
export const PROVENANCE_FILE = 'provenance.intoto.jsonl';

/** One artifact of the build, with what was read from it and the target's record. */
export interface ProvenanceArtifact {
  target: TargetId;
  artifact: ArtifactInfo;
  /** The builder image the target ran in (the build document's targets.<t>.image). */
  image: string;
  /** Read from the artifact's bytes; undefined when they carry none (then no module is listed for it). */
  buildInfo?: GoBuildInfo;
  verify?: VerifyResult;
  startedAt?: string;
}

/** An in-toto ResourceDescriptor (https://github.com/in-toto/attestation/blob/main/spec/v1/resource_descriptor.md). */
export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, unknown>;
}

export interface ProvenanceStatement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: typeof SLSA_PROVENANCE_V1;
  predicate: {
    buildDefinition: {
      buildType: string;
      externalParameters: Record<string, unknown>;
      internalParameters: Record<string, unknown>;
      resolvedDependencies: ResourceDescriptor[];
    };
    runDetails: {
      builder: { id: string; version: Record<string, string> };
      metadata: { invocationId: string; startedOn?: string; finishedOn?: string };
      byproducts: ResourceDescriptor[];
    };
  };
}

/** The statement of `state`'s built artifacts; `builderId` names this installation, `buildUrl` the build document. */
export function provenanceStatement(
  state: BuildState,
  artifacts: ProvenanceArtifact[],
  builderId: string,
  buildUrl: string,
): ProvenanceStatement {
  const r = state.record;
  const started =
    artifacts
      .map((a) => a.startedAt ?? '')
      .filter(Boolean)
      .sort()[0] ?? r.createdAt;
  return {
    _type: STATEMENT_TYPE,
    subject: artifacts.map((a) => ({ name: a.artifact.name, digest: { sha256: a.artifact.sha256 } })),
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: PLUGFORGE_BUILD_TYPE,
        externalParameters: externalParameters(state),
        internalParameters: {
          go: r.go,
          vendored: r.source.vendored,
          ...(r.hostMatch
            ? {
                hostMatch: { from: r.hostMatch.from, trimpath: r.hostMatch.trimpath, tags: r.hostMatch.tags, aligned: r.hostMatch.aligned },
              }
            : {}),
          ...(state.dependencies?.goSumAdded?.length ? { goSumAdded: state.dependencies.goSumAdded } : {}),
          ...(r.reusedFrom ? { reusedFrom: r.reusedFrom } : {}),
        },
        resolvedDependencies: [
          { name: 'source', digest: { sha256: r.source.sha256 }, annotations: { module: r.source.module } },
          ...builderImages(artifacts),
          ...linkedModules(artifacts),
        ],
      },
      runDetails: {
        builder: { id: builderId, version: { plugforge: PACKAGE_VERSION } },
        metadata: { invocationId: r.id, startedOn: started, ...(state.finishedAt ? { finishedOn: state.finishedAt } : {}) },
        byproducts: artifacts.map((a) => verifyByproduct(a, buildUrl)),
      },
    },
  };
}

/** What the request asked for, as the build document records it, and the source it sent. */
function externalParameters(state: BuildState): Record<string, unknown> {
  const r = state.record;
  const build = buildSettingsOf(r);
  return {
    source: { sha256: r.source.sha256, size: r.source.size },
    go: r.goRequested,
    targets: r.targetIds,
    name: r.name,
    mode: r.mode,
    host: r.host,
    build: { trimpath: build.trimpath, tags: build.tags, ...(build.strip ? { strip: true } : {}) },
    verify: r.verifyMode ?? 'strict',
    ...(r.hostBinaries?.length ? { hostBinaries: r.hostBinaries.map((h) => ({ target: h.target, sha256: h.sha256 })) } : {}),
  };
}

/** Each target's builder image, with the exact Go release that linked its artifact. */
function builderImages(artifacts: ProvenanceArtifact[]): ResourceDescriptor[] {
  return artifacts.map((a) => ({
    name: `builder/${a.target}`,
    uri: imagePurl(a.image),
    annotations: { target: a.target, go: a.buildInfo?.goVersion ?? 'unknown' },
  }));
}

/** `repo:tag` as a package URL (pkg:docker/<repo>@<tag>): the tag names the exact Go release and target. */
function imagePurl(image: string): string {
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? `pkg:docker/${image.slice(0, colon)}@${image.slice(colon + 1)}` : `pkg:docker/${image}`;
}

/**
 * Every module linked into any artifact (the replacement when a `replace` applies), as a
 * Go package URL; its go.sum hash both as DigestSet `dirHash` (in-toto's name for Go's
 * dirhash h1, in hex) and, as go.sum writes it, in annotations.h1. Modules some targets do
 * not link name the targets that do.
 */
function linkedModules(artifacts: ProvenanceArtifact[]): ResourceDescriptor[] {
  const seen = new Map<string, { module: GoModule; targets: TargetId[] }>();
  for (const a of artifacts) {
    for (const m of a.buildInfo?.deps ?? []) {
      const used = m.replace ?? m;
      const key = `${used.path}@${used.version}`;
      const entry = seen.get(key) ?? { module: m, targets: [] };
      entry.targets.push(a.target);
      seen.set(key, entry);
    }
  }
  const withInfo = artifacts.filter((a) => a.buildInfo).length;
  return [...seen.values()].map(({ module: m, targets }) => {
    const used = m.replace ?? m;
    const dirHash = used.sum ? h1ToHex(used.sum) : undefined;
    return {
      uri: `pkg:golang/${used.path}@${used.version}`,
      ...(dirHash ? { digest: { dirHash } } : {}),
      annotations: {
        ...(used.sum ? { h1: used.sum } : {}),
        ...(m.replace ? { replaces: `${m.path}@${m.version}` } : {}),
        ...(targets.length < withInfo ? { targets } : {}),
      },
    };
  });
}

/** "h1:<base64 sha256>" → the sha256 in hex; undefined for anything else. */
export function h1ToHex(sum: string): string | undefined {
  const m = /^h1:([A-Za-z0-9+/]{43}=)$/.exec(sum);
  return m ? Buffer.from(m[1]!, 'base64').toString('hex') : undefined;
}

/** A target's verification as a byproduct: its result in annotations, the build document as where it is kept. */
function verifyByproduct(a: ProvenanceArtifact, buildUrl: string): ResourceDescriptor {
  const v = a.verify;
  return {
    name: `verify/${a.target}`,
    uri: `${buildUrl}#targets.${a.target}.verify`,
    annotations: {
      artifact: a.artifact.name,
      status: v?.status ?? 'skipped',
      ...(v?.method ? { method: v.method } : {}),
      ...(v?.probe?.how ? { probe: v.probe.how } : {}),
      ...(v?.fingerprints ? { hostBinary: { sha256: v.fingerprints.hostBinary }, packagesCompared: v.fingerprints.compared } : {}),
    },
  };
}
