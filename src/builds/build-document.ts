import type { GoSource } from '../contract/toolchain-image.js';
import type { HostMatch } from '../host/host-match.js';
import type { MatrixCell } from './host-matrix.js';
import type { PluginBuildSettings } from '../host/host-request.js';
import type { TargetId } from '../contract/targets.js';
import { TERMINAL, type BuildMode, type BuildStatus, type HostProfile, type PhaseTimings } from '../contract/build-vocabulary.js';
export {
  BUILD_STATUSES,
  HOST_PROFILES,
  PHASES,
  TERMINAL,
  type BuildMode,
  type BuildStatus,
  type HostProfile,
  type Phase,
  type PhaseTimings,
} from '../contract/build-vocabulary.js';

export interface TargetError {
  code: string;
  message: string;
  retryable?: boolean;
}

export interface ArtifactInfo {
  name: string;
  size: number;
  sha256: string;
}

/** A target's artifact compared with a host binary's package fingerprints. */
export interface FingerprintCheck {
  /** The host binary's sha256. */
  hostBinary: string;
  go: string;
  /** Packages the artifact and the host both link. */
  compared: number;
  /** Those whose fingerprints differ: plugin.Open in that host refuses the artifact. */
  differing: string[];
  status?: 'passed' | 'failed';
  message?: string;
}

/** The loading probe's run: how it ran, or why this worker could not run it. */
export interface ProbeCheck {
  status: 'passed' | 'failed' | 'skipped';
  how?: string;
  reason?: string;
}

/**
 * What a target's verification proved. `method` is the strongest check that decided it:
 * `fingerprints` (compared with the host's own binary), `probe` (loaded by a probe host
 * built like the host), `elf` (the ELF header only). `skipped`: the artifact built but
 * this worker could not load it (its limitation, not the plugin's); the target succeeds.
 */
export interface VerifyResult {
  status: 'passed' | 'failed' | 'skipped';
  message: string;
  method?: 'fingerprints' | 'probe' | 'elf' | 'header';
  fingerprints?: FingerprintCheck;
  probe?: ProbeCheck;
  /** A build of a matrix group: the artifact compared with each release's executable of the target (docs/hosts.md, "A matrix"). */
  releases?: ReleaseCheck[];
}

/** The artifact compared with one host release's executable of its target. */
export interface ReleaseCheck {
  release: string;
  hostBinary: string;
  go: string;
  compared: number;
  differing: string[];
  status: 'passed' | 'failed';
  message: string;
}

/** One target of a build, as stored and as reported in `targets.<target>`. */
export interface TargetState {
  status: BuildStatus;
  image: string;
  attempt?: number;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  error?: TargetError;
  artifact?: ArtifactInfo;
  verify?: VerifyResult;
  /** Where the time of the last attempt went (absent in states from before, and for targets that did not run). */
  phases?: PhaseTimings;
  /** For a plugin checked against a host binary: whose standard library the host has, and the image built with. */
  goSource?: StdSourceChoice;
}

/** One image source's standard library compared with the host's. */
export interface StdSourceCheck {
  source: GoSource | 'unknown';
  image: string;
  /** The host's standard packages whose fingerprints differ from this source's. */
  differing: string[];
  /** Why this source could not be compared (its images could not be made, the link failed). */
  error?: string;
}

/** Which source's image a target builds with, and what was compared to choose it (docs/images.md, "Both sources of one release"). */
export interface StdSourceChoice {
  used: GoSource | 'unknown';
  image: string;
  /** Whether the used source's standard library has the host's fingerprints. */
  matched: boolean;
  checked: StdSourceCheck[];
}

/** What a build was asked to do, fixed when it is accepted. */
export interface BuildRecord {
  id: string;
  tenant: string;
  createdAt: string;
  /** The exact Go release the build uses. */
  go: string;
  /** What the request said (e.g. "1.22"), when it differed from `go`. */
  goRequested: string;
  name: string;
  mode: BuildMode;
  host: HostProfile;
  /** The targets asked for, in target-table order. */
  targetIds: TargetId[];
  /** requirements: go.mod requires modules (downloaded in the dependency phase unless vendored). */
  source: { sha256: string; size: number; module: string; vendored: boolean; requirements: boolean };
  /** How the plugin is built beyond the toolchain (absent in records from before: no trimpath, no tags); `strip` only when asked for. */
  build?: PluginBuildSettings;
  /**
   * strict (the default): a failed verification fails the target; warn: it is reported
   * only; loaded: as strict, and a target must also be loaded by the probe: a worker that
   * cannot load its architecture hands it to one that can, or fails it (probe_unavailable).
   */
  verifyMode?: 'strict' | 'warn' | 'loaded';
  /** The host the plugin must load into, when described by its go.mod or binary. */
  hostMatch?: HostMatch;
  /** Host binaries given (ELF executables), one per target at most: each target with one is checked against it. */
  hostBinaries?: HostBinaryRef[];
  /** The reuse key (src/builds/build-reuse.ts), when reuse is on and every target's image was known. */
  reuseKey?: string;
  /**
   * The identical build whose run this one shares: its targets' ends are this build's, its
   * artifacts (content-addressed) are this build's artifacts. Nothing of this build runs.
   */
  reusedFrom?: string;
  /** A matrix build (hosts= naming several releases): it runs nothing itself; its builds run its cells (src/builds/host-matrix.ts). */
  matrix?: MatrixRecord;
  /** The matrix build this build runs a group of releases for, and those releases (the first describes this build). */
  matrixOf?: MatrixGroupOf;
  /** A matrix group's releases with their executables: each target's artifact is checked against each release's. */
  releaseBinaries?: { release: string; binaries: HostBinaryRef[] }[];
}

/** A matrix build's releases in the order asked, and the builds that run them: one per group of releases that need the same bytes. */
export interface MatrixRecord {
  hosts: string[];
  builds: { build: string; hosts: string[] }[];
}

/** What a build of a matrix group knows of its matrix. */
export interface MatrixGroupOf {
  build: string;
  hosts: string[];
}

/** A host executable given with a build: its package fingerprints are a blob of their own (JSON). */
export interface HostBinaryRef {
  target: TargetId;
  sha256: string;
  size: number;
  go: string;
  /** How many packages it links (fingerprints it exports). */
  packages: number;
  /** The blob holding its fingerprints, `{"<import path>": "<hex>"}`. */
  fingerprintsBlob: string;
}

/** The plugin's build settings of a record, with the defaults of records that have none. */
export function buildSettingsOf(record: BuildRecord): PluginBuildSettings {
  return record.build ?? { trimpath: false, tags: [] };
}

/** The dependency phase of a build (absent when the build needs none). */
export interface DependencyState {
  status: BuildStatus;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  /** Modules in the download list, and how many of them were not in the cache yet. */
  modules?: number;
  downloaded?: number;
  /** go.sum lines added for the versions host alignment chose (hashes Go computed on download). */
  goSumAdded?: string[];
  error?: TargetError;
}

/**
 * The builder images a build waits for (images on demand: docs/decisions.md): queued until
 * a worker takes the job, running while it builds them (or waits on another worker that
 * does), succeeded once the release's images exist; `go` is the release asked for.
 */
export interface ImagesState {
  status: BuildStatus;
  go: string;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  /** Whether this build's job made them (false: another worker's build, or they appeared meanwhile). */
  built?: boolean;
  error?: TargetError;
}

/** A build as the repository holds it: the record, its targets' states, and whether it was canceled. */
export interface BuildState {
  record: BuildRecord;
  targets: Partial<Record<TargetId, TargetState>>;
  canceledAt?: string;
  dependencies?: DependencyState;
  images?: ImagesState;
  status: BuildStatus;
  finishedAt?: string;
  /** A matrix build's cells, from its builds' states (src/builds/host-matrix.ts). */
  cells?: MatrixCell[];
}

/**
 * The build's status from its targets': canceled once canceled; preparing while its
 * images are made; while any target is unfinished, queued (none started) or running; then
 * succeeded only if all did.
 */
export function deriveStatus(states: TargetState[], canceled: boolean, dependencies?: DependencyState, images?: ImagesState): BuildStatus {
  if (canceled) return 'canceled';
  if (images && !TERMINAL.has(images.status) && states.some((s) => !TERMINAL.has(s.status))) return 'preparing';
  if (states.some((s) => !TERMINAL.has(s.status))) {
    const depsStarted = dependencies !== undefined && dependencies.status !== 'queued';
    return states.every((s) => s.status === 'queued') && !depsStarted ? 'queued' : 'running';
  }
  return states.every((s) => s.status === 'succeeded') ? 'succeeded' : states.some((s) => s.status === 'canceled') ? 'canceled' : 'failed';
}

/** The last finishedAt of all targets, once all are finished. */
export function deriveFinishedAt(states: TargetState[]): string | undefined {
  if (!states.length || states.some((s) => !TERMINAL.has(s.status))) return undefined;
  return (
    states
      .map((s) => s.finishedAt ?? '')
      .sort()
      .at(-1) || undefined
  );
}

/** A build that needs its modules downloaded first: requirements, and no vendor/ it builds from. */
export function needsModules(record: BuildRecord): boolean {
  return record.source.requirements && (!record.source.vendored || vendorSetAside(record));
}

/**
 * Without -trimpath, where a package's source was read enters the hashes plugin.Open
 * compares: a host built from the module cache refuses a plugin that read the same
 * module from vendor/. So a vendored plugin matched to such a host is built from the
 * module cache (/go/pkg/mod/<module>@<version>, as the host was), its modules downloaded
 * and checked against go.sum like anyone's; vendor/ is set aside.
 */
export function vendorSetAside(record: BuildRecord): boolean {
  return record.source.vendored && record.hostMatch !== undefined && !record.hostMatch.trimpath;
}
