import { TERMINAL, type ArtifactInfo, type BuildState } from '../builds/build-document.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { BlobStore } from '../store/blob-store.js';
import type { TargetId } from '../contract/targets.js';
import { artifactBuildInfo, ArtifactWindows } from './artifact-build-info.js';
import { cyclonedxSbom, type CycloneDxBom } from './cyclonedx-sbom.js';
import { IN_TOTO_PAYLOAD_TYPE, pae, signEnvelope, type DsseEnvelope } from './dsse.js';
import type { SigningKeys } from './signing-keys.js';
import { provenanceStatement, type ProvenanceArtifact } from './slsa-provenance.js';

/**
 * What plugforge says about a build's artifacts, made from the stored build state and the
 * stored artifact bytes whenever it is asked for (docs/decisions.md, "Provenance is made
 * when asked"): each artifact's signature and SBOM, and the build's signed provenance.
 */
export interface ArtifactEvidence extends ProvenanceArtifact {
  /** base64 DER ECDSA P-256 over the artifact's bytes (SHA-256). */
  signature: string;
  /** Absent when the artifact carries no Go build info. */
  sbom?: CycloneDxBom;
}

export interface BuildEvidence {
  envelope: DsseEnvelope<typeof IN_TOTO_PAYLOAD_TYPE>;
  artifacts: ArtifactEvidence[];
}

/** The targets that succeeded, with their artifacts, in target order: what artifacts.tar.gz holds and the provenance names. */
export function builtArtifacts(state: BuildState): { target: TargetId; artifact: ArtifactInfo }[] {
  // A matrix build's artifacts are its succeeded cells', each under its release's name (docs/hosts.md, "A matrix").
  if (state.cells)
    return state.cells.flatMap((c) => (c.artifact && c.status === 'succeeded' ? [{ target: c.target, artifact: c.artifact }] : []));
  return state.record.targetIds.flatMap((t) => {
    const a = state.targets[t]?.artifact;
    return a && state.targets[t]?.status === 'succeeded' ? [{ target: t, artifact: a }] : [];
  });
}

/** 409 no_artifacts: nothing of the build built (every download and the provenance say the same). */
export function noArtifactsError(state: BuildState): PlugforgeError {
  const id = state.record.id;
  return new PlugforgeError(
    'no_artifacts',
    `Build ${id} has no artifacts (status ${state.status}). See GET /v1/builds/${id} for each target's error.`,
    { status: 409 },
  );
}

/** The built artifacts of an ended build; 409 while it runs (build_not_ended) or when none built (no_artifacts). */
export function endedArtifacts(state: BuildState): { target: TargetId; artifact: ArtifactInfo }[] {
  const id = state.record.id;
  if (!TERMINAL.has(state.status)) {
    throw new PlugforgeError(
      'build_not_ended',
      `Build ${id} is ${state.status}: its provenance, signatures and SBOMs exist once it has ended. Wait with: plugforge logs ${id} --follow`,
      { status: 409 },
    );
  }
  const built = builtArtifacts(state);
  if (!built.length) {
    throw noArtifactsError(state);
  }
  return built;
}

/**
 * Who signs: runDetails.builder.id and the URL of each build in the provenance. From the
 * configuration only, never from a request (its Host header is the client's to choose):
 * PLUGFORGE_PUBLIC_URL, or else an id derived from the signing key, which names this
 * installation as long as it signs with that key (docs/provenance.md, "Verify what you downloaded").
 */
export interface Builder {
  id: string;
  buildUrl(buildId: string): string;
}

export function builderOf(publicUrl: string | undefined, keyid: string): Builder {
  const id = publicUrl ?? `urn:plugforge:builder:${keyid}`;
  return { id, buildUrl: (buildId) => `${id}/v1/builds/${buildId}` };
}

/** One artifact's signature and SBOM, read from its stored bytes as they stream by (never all in memory). */
export async function artifactEvidence(
  store: BlobStore,
  keys: SigningKeys,
  state: BuildState,
  target: TargetId,
  artifact: ArtifactInfo,
): Promise<ArtifactEvidence> {
  const windows = new ArtifactWindows();
  const signature = await keys.signStreamOnce((await store.open(artifact.sha256)).stream, artifact, (chunk) => windows.push(chunk));
  const buildInfo = await artifactBuildInfo(store, artifact, windows);
  const ts = state.targets[target];
  return {
    target,
    artifact,
    image: ts?.image ?? '',
    ...(buildInfo
      ? {
          buildInfo,
          sbom: cyclonedxSbom({
            buildId: state.record.id,
            target,
            mode: state.record.mode,
            artifact,
            buildInfo,
            ...(state.finishedAt ? { finishedAt: state.finishedAt } : {}),
          }),
        }
      : {}),
    ...(ts?.verify ? { verify: ts.verify } : {}),
    ...(ts?.startedAt ? { startedAt: ts.startedAt } : {}),
    signature,
  };
}

/** Every built artifact's evidence and the build's provenance, signed as a DSSE envelope. Artifacts are read one at a time. */
export async function buildEvidence(store: BlobStore, keys: SigningKeys, state: BuildState, builder: Builder): Promise<BuildEvidence> {
  const artifacts: ArtifactEvidence[] = [];
  for (const { target, artifact } of endedArtifacts(state)) artifacts.push(await artifactEvidence(store, keys, state, target, artifact));
  const statement = provenanceStatement(state, artifacts, builder.id, builder.buildUrl(state.record.id));
  const payload = Buffer.from(JSON.stringify(statement));
  const signature = await keys.signOnce(pae(IN_TOTO_PAYLOAD_TYPE, payload));
  const envelope = signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, keys.current.keyid, () => signature);
  return { envelope, artifacts };
}

/** Builds whose evidence one API process keeps at hand. */
const RECENT_BUILDS = 32;

/**
 * The evidence of the builds asked about lately, made once per process, build and signing
 * key (what is signed depends on nothing else: the builder comes from the configuration):
 * a download storm of one build's artifacts.tar.gz reads and parses its artifacts once, not
 * once per download, whatever the requests' headers. Requests at the same time share one
 * making; a making that failed is not kept.
 */
export class EvidenceCache {
  private readonly recent = new Map<string, Promise<BuildEvidence>>();

  constructor(
    private readonly store: BlobStore,
    readonly keys: SigningKeys,
    private readonly publicUrl?: string,
  ) {}

  /** The builder the evidence names: PLUGFORGE_PUBLIC_URL, or the current key's id (builderOf). */
  get builder(): Builder {
    return builderOf(this.publicUrl, this.keys.current.keyid);
  }

  of(state: BuildState): Promise<BuildEvidence> {
    const key = JSON.stringify([state.record.id, this.keys.current.keyid]);
    let made = this.recent.get(key);
    if (!made) {
      made = buildEvidence(this.store, this.keys, state, this.builder);
      this.recent.set(key, made);
      made.catch(() => this.recent.delete(key));
      for (const oldest of this.recent.keys()) {
        if (this.recent.size <= RECENT_BUILDS) break;
        this.recent.delete(oldest);
      }
    }
    return made;
  }
}
