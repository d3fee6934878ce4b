import type { Readable, Writable } from 'node:stream';
import type { BuildSpec } from '../worker/build-spec.js';

/** How a build container ended. */
export interface ExitStatus {
  exitCode: number;
  oomKilled: boolean;
}

/** A container created for one BuildSpec. */
export interface ContainerHandle {
  id: string;
  spec: BuildSpec;
}

/**
 * Executes BuildSpecs. Implementations: DockerRuntime (a real engine) and, for tests of
 * orchestration, a scripted fake. Errors that say the engine is unreachable are
 * PlugforgeErrors with retryable = true; everything else about one container is final.
 */
export interface BuildRuntime {
  /** Creates (does not start) the container. */
  create(spec: BuildSpec): Promise<ContainerHandle>;
  /** Extracts a tar stream into the container at `dir` (a path inside its /work volume). */
  putArchive(handle: ContainerHandle, dir: string, tar: Readable): Promise<void>;
  /** Starts the container, copying its stdout and stderr (which may be the same stream) until it exits. */
  start(handle: ContainerHandle, stdout: Writable, stderr?: Writable): Promise<void>;
  /** Waits for the container to exit. Rejects when `signal` aborts (the container is then killed). */
  wait(handle: ContainerHandle, signal: AbortSignal): Promise<ExitStatus>;
  /** A tar stream of `path` in the (stopped) container; rejects with code artifact_missing when there is none. */
  getArchive(handle: ContainerHandle, path: string): Promise<Readable>;
  /** Kills and removes the container and its anonymous volumes. Idempotent; "already gone" is success. */
  destroy(handle: Pick<ContainerHandle, 'id'>): Promise<void>;
  /** Ids of build containers carrying all the given labels (any state). */
  list(labels: Record<string, string>): Promise<{ id: string; labels: Record<string, string> }[]>;
  /** Makes the Go build cache volume usable by the build user. Idempotent. */
  prepareCache(spec: BuildSpec): Promise<void>;
}
