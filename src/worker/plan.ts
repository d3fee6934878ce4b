import { buildSettingsOf, needsModules, vendorSetAside, type BuildRecord } from '../builds/build-document.js';
import type { Config } from '../config.js';
import { imageTag } from '../images/image-tags.js';
import { TARGETS, type TargetId } from '../contract/targets.js';
import { PREBUILT_PROBE } from '../verify/load-probe.js';
import { jobIdOf } from '../queue/job-ids.js';
import { BUILD_UID, containerSpecSchema, CONTAINER_PATHS, LABELS, type ContainerSpec } from '../runtime/build-spec.js';
import { artifactPlaceSchema, type BuildStep, type DependencyStep, type VerifyStep } from './steps.js';
import { readProgram } from '../program-file.js';

/** The containers' scripts, in scripts/ beside this module: each file's header says its arguments and what it prints. */
const script = (file: string) => readProgram(new URL(`./scripts/${file}`, import.meta.url));

/** Who runs a spec: the worker, and the installation it belongs to. */
export interface WorkerIdentity {
  workerId: string;
  instanceId: string;
}

function labelsOf(
  record: BuildRecord,
  part: TargetId | 'deps',
  who: WorkerIdentity,
  step: 'dependencies' | 'build',
): Record<string, string> {
  return {
    [LABELS.role]: 'build',
    [LABELS.step]: step,
    [LABELS.build]: record.id,
    [LABELS.target]: part,
    [LABELS.job]: jobIdOf(record.id, part),
    [LABELS.worker]: who.workerId,
    [LABELS.instance]: who.instanceId,
  };
}

function limitsOf(config: Pick<Config, 'build'>, timeoutMs: number): ContainerSpec['limits'] {
  const b = config.build;
  return {
    memoryBytes: b.memoryBytes,
    nanoCpus: b.nanoCpus,
    pidsLimit: b.pidsLimit,
    timeoutMs,
    maxLogBytes: b.maxLogBytes,
    maxArtifactBytes: b.maxArtifactBytes,
    workBytes: b.workDiskBytes,
    tmpfsBytes: b.tmpDiskBytes,
    cacheBytes: b.cacheMaxBytes,
  };
}

function cacheVolumeOf(record: BuildRecord, target: TargetId): string {
  return `plugforge-gocache-${record.tenant}-${record.go}-${target}`.toLowerCase().replace(/[^a-z0-9._-]/g, '-');
}

/**
 * The tenant's module cache volume: no build sees a module another tenant fetched, and the
 * dependency log's "in the module cache" speaks of the tenant's own downloads only
 * (docs/decisions.md, "A module cache per tenant"). Tenant names are already volume-safe (TENANT_RE).
 */
function moduleCacheOf(record: BuildRecord, config: Pick<Config, 'modules'>): string {
  return `${config.modules.cacheVolume}-${record.tenant}`;
}

/**
 * Plans the dependency phase of a build: `go mod download` of the plugin's module graph
 * into its tenant's module cache, from the configured proxy, once per build. It runs Go on
 * the untrusted go.mod, so it is hardened like a build; it gets a network only when the
 * proxy is an http(s) URL (a file:// proxy is mounted instead). The script is ours; the
 * request supplies only file contents.
 */
export function planDependencies(
  record: BuildRecord,
  config: Pick<Config, 'imageRepo' | 'build' | 'modules' | 'goProxy'>,
  who: WorkerIdentity,
): DependencyStep {
  const m = config.goProxy;
  const fileProxy = m.proxy.startsWith('file://') ? m.proxy.slice('file://'.length) : undefined;
  const env = [
    'GOTOOLCHAIN=local',
    `GOPROXY=${fileProxy ? `file://${CONTAINER_PATHS.proxy}` : m.proxy}`,
    `GOSUMDB=${m.sumdb}`,
    `GONOSUMDB=${m.noSumDb}`,
    `GOPRIVATE=${m.private}`,
    `GOINSECURE=${m.insecure}`,
    'GOFLAGS=-mod=readonly',
    `GOMODCACHE=${CONTAINER_PATHS.modCache}`,
    `GOCACHE=${CONTAINER_PATHS.tmp}/gocache`,
    `HOME=${CONTAINER_PATHS.home}`,
    `TMPDIR=${CONTAINER_PATHS.tmp}`,
  ];
  const container = containerSpecSchema.parse({
    jobId: jobIdOf(record.id, 'deps'),
    // Any image of the release has the go command; linux-amd64 is the one every site has.
    image: imageTag(config.imageRepo, record.go, 'linux-amd64'),
    // First what the cache already holds (lookups off), then the download itself; both JSON.
    // Matching a host, then also the modules the plugin links and the module graph, offline.
    cmd: ['sh', '-c', record.hostMatch ? DEPS_SCRIPT_HOST : DEPS_SCRIPT],
    env: record.hostMatch ? [...env, `PLUGFORGE_LIST_FLAGS=${tagsFlag(record.hostMatch.tags)}`] : env,
    workdir: CONTAINER_PATHS.src,
    user: `${BUILD_UID}:${BUILD_UID}`,
    network: fileProxy ? 'none' : 'bridge',
    moduleCache: { volume: moduleCacheOf(record, config), readOnly: false, maxBytes: config.modules.cacheMaxBytes },
    ...(fileProxy ? { proxyDir: fileProxy } : {}),
    labels: labelsOf(record, 'deps', who, 'dependencies'),
    limits: limitsOf(config, config.modules.timeoutMs),
    ...(config.build.runtime ? { runtime: config.build.runtime } : {}),
  });
  return { kind: 'dependencies', container, proxy: m.proxy };
}

/**
 * The loading probe's container for a planned plugin build: the same image, user, limits
 * and hardening (it runs the plugin's init functions, untrusted code), and no cache of any
 * kind mounted, so nothing it does outlives it. The probe binary was built in the build's
 * container; here it runs under the loader the worker found for the target's image
 * (src/verify/probe-loaders.ts), with the artifact and the symbols as arguments (no shell).
 */
export function planVerify(build: BuildStep, symbols: readonly string[], loader: { argv: readonly string[]; how: string }): VerifyStep {
  const { moduleCache: _modules, cacheVolume: _cache, ...rest } = build.container;
  const container = containerSpecSchema.parse({
    ...rest,
    workdir: CONTAINER_PATHS.work,
    cmd: [...loader.argv, PROBE_BINARY, build.artifact.path, ...symbols],
    labels: { ...rest.labels, [LABELS.step]: 'verify' },
  });
  const probeSettings = build.probeSettings ?? 'no -trimpath, no tags';
  return {
    kind: 'verify',
    target: build.target,
    container,
    artifact: build.artifact,
    symbols: [...symbols],
    probeSettings,
    how: loader.how,
  };
}

/** Where a plugin build leaves the loading probe it built. */
export const PROBE_BINARY = `${CONTAINER_PATHS.tmp}/probe`;

/** Lines the dependency scripts print between the sections of their output (written in them as here: test/plan.test.ts). */
export const DEPS_MARK = {
  cached: '{"plugforge":"cached"}',
  download: '{"plugforge":"download"}',
  linked: '{"plugforge":"linked"}',
  listFailed: '{"plugforge":"list-failed"}',
  graph: '{"plugforge":"graph"}',
} as const;

/** The dependency step's scripts, in scripts/ beside this module (their headers say what they print): plain, and matching a host. */
const DEPS_SCRIPT = script('download-modules.sh');
const DEPS_SCRIPT_HOST = script('download-modules-host.sh');

/** Where the loading probe's package sits in the plugin's module (a dot directory: ./... skips it). */
export const PROBE_DIR = '.plugforge-probe';

/**
 * Where a plugin build keeps the loading probe it built, in the tenant's build cache (keyed
 * by the probe's flags, go.mod and the probe's package). The next build copies it back
 * before its go build of the probe, and go links again only when the copy's build ID is not
 * the one it would produce (docs/decisions.md, "Speed"): a one-line edit of a plugin does
 * not change its probe, so the probe is not linked again. A reuse refreshes the file's
 * mtime, as Go does for its own entries, so the cache's trimming keeps it.
 */
export const PROBE_KEPT_DIR = `${CONTAINER_PATHS.cache}/plugforge-probes`;
/** The build log's line when the kept probe was up to date (go did not link it). */
export const PROBE_KEPT_MARK = 'probe: up to date, kept from an earlier build';

/**
 * The plugin build's script, ours (scripts/plugin-build.sh): build the plugin ("$@"), then
 * the loading probe as a package of the plugin's own module, so it sees the same go.mod,
 * go.sum and vendor/, with blank imports of the packages it shares with a matched host.
 * The paths and the mark above are written in it as they are here (test/plan.test.ts).
 */
export const PLUGIN_SCRIPT = script('plugin-build.sh');

/**
 * GO386 and GOAMD64 enter the package hashes plugin.Open compares (a GO386=sse2 host
 * refuses a softfloat plugin: "different version of package math"). 386 builds use
 * sse2, the default of Go's own releases (Debian's toolchain defaults to softfloat),
 * unless a 386 host binary says otherwise; amd64 follows an amd64 host binary's GOAMD64.
 */
function archEnvOf(record: BuildRecord, target: TargetId): string[] {
  const match = record.hostMatch;
  const arch =
    [...(match?.archs ?? []), ...(match?.arch ? [match.arch] : [])].find((a) => a.goarch === TARGETS[target].goarch) ?? match?.arch;
  if (target === 'linux-386') return [`GO386=${arch?.goarch === '386' && arch.go386 ? arch.go386 : 'sse2'}`];
  if (target === 'linux-amd64' && arch?.goarch === 'amd64' && arch.goamd64 && arch.goamd64 !== 'v1') return [`GOAMD64=${arch.goamd64}`];
  return [];
}

function tagsFlag(tags: readonly string[]): string {
  return tags.length ? `-tags=${tags.join(',')}` : '';
}

export function artifactNameOf(name: string, target: TargetId, mode: BuildRecord['mode']): string {
  return mode === 'plugin' ? `${name}-${target}.so` : `${name}-${target}${TARGETS[target].suffix ?? ''}`;
}

/**
 * What the plugin script needs to build the loading probe: the host's trimpath and tags
 * (the plugin's own unless a host binary said otherwise); with no host described and the
 * default settings the probe links the standard library alone, built just as the image's
 * prebuilt one is, so that one is used. Nothing for an executable.
 */
function probeEnvOf(record: BuildRecord, fromVendor: boolean): string[] {
  if (record.mode !== 'plugin') return [];
  const settings = buildSettingsOf(record);
  const prebuilt = !record.hostMatch && !settings.trimpath && !settings.tags.length;
  return [
    `PLUGFORGE_PROBE_FLAGS=${probeFlagsOf(record, fromVendor).join(' ')}`,
    ...(prebuilt ? [`PLUGFORGE_PROBE_PREBUILT=${PREBUILT_PROBE}`] : []),
  ];
}

/** The go build flags of the loading probe: the host's trimpath and tags, vendor/ as the plugin. */
function probeFlagsOf(record: BuildRecord, fromVendor: boolean): string[] {
  const host = record.hostMatch ?? buildSettingsOf(record);
  return [
    ...(fromVendor ? ['-mod=vendor'] : []),
    ...(host.trimpath ? ['-trimpath'] : []),
    ...(host.tags.length ? [tagsFlag(host.tags)] : []),
  ];
}

/** The `go build` command line of a target: its mode, vendor/ or not, the build settings, the artifact's path. */
function goBuildArgs(record: BuildRecord, fromVendor: boolean, artifactPath: string): string[] {
  const settings = buildSettingsOf(record);
  const goBuild = ['go', 'build', '-buildvcs=false'];
  if (record.mode === 'plugin') goBuild.push('-buildmode=plugin');
  if (fromVendor) goBuild.push('-mod=vendor');
  if (settings.trimpath) goBuild.push('-trimpath');
  if (settings.tags.length) goBuild.push(tagsFlag(settings.tags));
  if (settings.strip) goBuild.push('-ldflags=-s -w');
  goBuild.push('-o', artifactPath, settings.package ?? '.');
  return goBuild;
}

/** A build container's environment: the target's C cross-compiler, an offline Go, the caches, the probe's settings. */
function buildEnvOf(record: BuildRecord, target: TargetId, fromVendor: boolean): string[] {
  const t = TARGETS[target];
  const env = [
    `GOOS=${t.goos}`,
    `GOARCH=${t.goarch}`,
    ...(t.goarm ? [`GOARM=${t.goarm}`] : []),
    ...archEnvOf(record, target),
    // Plugins need cgo; executables are pure Go unless asked (cgo=true, linux only), as Mattermost builds them.
    ...(record.mode === 'plugin' || buildSettingsOf(record).cgo ? [`CC=${t.cc}`, 'CGO_ENABLED=1'] : ['CGO_ENABLED=0']),
    'GOTOOLCHAIN=local',
    // Builds are offline: modules come from vendor/ (or, later, a read-only module cache).
    'GOPROXY=off',
    `GOCACHE=${CONTAINER_PATHS.cache}`,
    `HOME=${CONTAINER_PATHS.home}`,
    `TMPDIR=${CONTAINER_PATHS.tmp}`,
    ...probeEnvOf(record, fromVendor),
  ];
  if (needsModules(record)) env.push(`GOMODCACHE=${CONTAINER_PATHS.modCache}`, 'GOFLAGS=-mod=readonly');
  return env;
}

/**
 * Plans one target's build: a pure function of the accepted build and the configuration.
 * Nothing from the request reaches the spec except through checked fields (the name is
 * validated when the build is accepted, the module path never enters the command).
 */
export function plan(
  record: BuildRecord,
  target: TargetId,
  config: Pick<Config, 'imageRepo' | 'build' | 'modules'>,
  who: WorkerIdentity,
  /** The image of the release to build in, when not its usual one (the other source's: src/worker/std-source.ts). */
  image = imageTag(config.imageRepo, record.go, TARGETS[target].image),
): BuildStep {
  const artifactName = artifactNameOf(record.name, target, record.mode);
  const artifactPath = `${CONTAINER_PATHS.out}/${artifactName}`;
  const fromVendor = record.source.vendored && !vendorSetAside(record);
  const goBuild = goBuildArgs(record, fromVendor, artifactPath);
  // A plugin's container also builds the loading probe, with the same toolchain and the
  // host's settings, and the build cache, so the probe's own container (which runs the
  // plugin's init, untrusted code) needs no cache at all. The script is ours; the go build
  // arguments follow it.
  const cmd = record.mode === 'plugin' ? ['sh', '-c', PLUGIN_SCRIPT, 'build', ...goBuild] : goBuild;
  const env = buildEnvOf(record, target, fromVendor);
  // One build cache per tenant, toolchain and target: a rebuild skips the standard library,
  // and no tenant's build can plant objects in another tenant's cache.
  const cacheVolume = cacheVolumeOf(record, target);
  const usesModules = needsModules(record);

  const container = containerSpecSchema.parse({
    jobId: jobIdOf(record.id, target),
    image,
    cmd,
    env,
    workdir: CONTAINER_PATHS.src,
    user: `${BUILD_UID}:${BUILD_UID}`,
    cacheVolume,
    network: 'none',
    ...(usesModules ? { moduleCache: { volume: moduleCacheOf(record, config), readOnly: true } } : {}),
    labels: labelsOf(record, target, who, 'build'),
    limits: limitsOf(config, config.build.timeoutMs),
    ...(config.build.runtime ? { runtime: config.build.runtime } : {}),
  });
  const artifact = artifactPlaceSchema.parse({ name: artifactName, path: artifactPath });
  if (record.mode !== 'plugin') return { kind: 'build', target, container, artifact, command: goBuild.join(' ') };
  const probeSettings = probeFlagsOf(record, fromVendor).join(' ') || 'no -trimpath, no tags';
  const command = `${goBuild.join(' ')}, then the loading probe (./${PROBE_DIR}; ${probeSettings})`;
  return { kind: 'build', target, container, artifact, command, probeSettings };
}
