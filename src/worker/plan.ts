import type { BuildRecord } from '../builds/build-document.js';
import type { Config } from '../config.js';
import { imageTag } from '../images/image-tags.js';
import { TARGETS, type TargetId } from '../targets.js';
import { BUILD_UID, buildSpecSchema, CONTAINER_PATHS, type BuildSpec } from './build-spec.js';

/** Container labels. Every build container carries them so orphans can be found and swept. */
export const LABELS = {
  role: 'org.plugforge.role',
  build: 'org.plugforge.build',
  target: 'org.plugforge.target',
  job: 'org.plugforge.job',
  worker: 'org.plugforge.worker',
  /** The plugforge installation (one Redis): sweepers leave other installations' containers alone. */
  instance: 'org.plugforge.instance',
} as const;

/** Who runs a spec: the worker, and the installation it belongs to. */
export interface WorkerIdentity {
  workerId: string;
  instanceId: string;
}

export function jobIdOf(buildId: string, target: TargetId): string {
  return `${buildId}-${target}`;
}

export function artifactNameOf(name: string, target: TargetId, mode: BuildRecord['mode']): string {
  return mode === 'plugin' ? `${name}-${target}.so` : `${name}-${target}`;
}

/**
 * Plans one target's build: a pure function of the accepted build and the configuration.
 * Nothing from the request reaches the spec except through checked fields (the name is
 * validated when the build is accepted, the module path never enters the command).
 */
export function plan(record: BuildRecord, target: TargetId, config: Pick<Config, 'imageRepo' | 'build'>, who: WorkerIdentity): BuildSpec {
  const t = TARGETS[target];
  const artifactName = artifactNameOf(record.name, target, record.mode);
  const artifactPath = `${CONTAINER_PATHS.out}/${artifactName}`;
  const cmd = ['go', 'build', '-buildvcs=false'];
  if (record.mode === 'plugin') cmd.push('-buildmode=plugin');
  if (record.source.vendored) cmd.push('-mod=vendor');
  cmd.push('-o', artifactPath, '.');

  const env = [
    `GOOS=${t.goos}`,
    `GOARCH=${t.goarch}`,
    ...(t.goarm ? [`GOARM=${t.goarm}`] : []),
    `CC=${t.cc}`,
    'CGO_ENABLED=1',
    'GOTOOLCHAIN=local',
    // Builds are offline: modules come from vendor/ (or, later, a read-only module cache).
    'GOPROXY=off',
    'GOFLAGS=',
    `GOCACHE=${CONTAINER_PATHS.cache}`,
    `HOME=${CONTAINER_PATHS.home}`,
    `TMPDIR=${CONTAINER_PATHS.tmp}`,
  ];

  // One build cache per tenant, toolchain and target: a rebuild skips the standard library,
  // and no tenant's build can plant objects in another tenant's cache.
  const cacheVolume = `plugforge-gocache-${record.tenant}-${record.go}-${target}`.toLowerCase().replace(/[^a-z0-9._-]/g, '-');

  return buildSpecSchema.parse({
    buildId: record.id,
    jobId: jobIdOf(record.id, target),
    target,
    image: imageTag(config.imageRepo, record.go, target),
    cmd,
    env,
    workdir: CONTAINER_PATHS.src,
    user: `${BUILD_UID}:${BUILD_UID}`,
    artifactPath,
    artifactName,
    cacheVolume,
    labels: {
      [LABELS.role]: 'build',
      [LABELS.build]: record.id,
      [LABELS.target]: target,
      [LABELS.job]: jobIdOf(record.id, target),
      [LABELS.worker]: who.workerId,
      [LABELS.instance]: who.instanceId,
    },
    limits: {
      memoryBytes: config.build.memoryBytes,
      nanoCpus: config.build.nanoCpus,
      pidsLimit: config.build.pidsLimit,
      timeoutMs: config.build.timeoutMs,
      maxLogBytes: config.build.maxLogBytes,
      maxArtifactBytes: config.build.maxArtifactBytes,
      tmpfsBytes: 256 * 1024 * 1024,
    },
  });
}
