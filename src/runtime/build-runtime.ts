import type { Readable, Writable } from 'node:stream';
import type { ContainerSpec } from './build-spec.js';

/** A container's sized writable paths: /work and /tmp (src/runtime/container-options.ts, ContainerDisks). */
export type DiskName = 'work' | 'tmp';

/** How a build container ended. */
export interface ExitStatus {
  exitCode: number;
  oomKilled: boolean;
  /** The disks that were full (within 1 MiB of their size) when it ended; measured only when it failed (exit code other than 0). */
  full?: DiskName[];
}

/** A container created for one ContainerSpec. */
export interface ContainerHandle {
  id: string;
  spec: ContainerSpec;
  /** Its sized volumes and the container holding them mounted (DockerRuntime); removed with it. */
  disks?: { work: string; tmp: string; holder?: string };
  /** The spec the holder was made of (create's `sandbox`): what runInHolder runs. */
  sandbox?: ContainerSpec;
}

/**
 * Executes ContainerSpecs. Implementations: DockerRuntime (a real engine) and, for tests of
 * orchestration, FakeRuntime (fake-runtime.ts, scripted); the builder images' side of the
 * same engine is ImageEngine (image-engine.ts). Errors that say the engine is unreachable are
 * PlugforgeErrors with retryable = true; everything else about one container is final.
 * Concurrency: any number of containers at once, from any number of workers on one engine;
 * calls on one handle are made in order (create, putArchive, start, wait, getArchive,
 * destroy, or destroy of the container alone and then runInHolder). Idempotent where a crashed worker's successor repeats them: destroy,
 * removeDisk, prepareCache.
 */
export interface BuildRuntime {
  /**
   * Creates (does not start) the container on disks of its own, held mounted by a holder
   * container. With a `sandbox` (the loading probe's spec), the holder is made of it, to
   * run it later by runInHolder on the same disks (where the build left the artifact and the
   * probe) once the container itself is removed.
   */
  create(spec: ContainerSpec, sandbox?: ContainerSpec): Promise<ContainerHandle>;
  /**
   * Runs the handle's sandbox command in its holder (an exec: the holder's hardening, limits
   * and disks), after the container itself was removed (`destroy({ id })`). Rejects when
   * `signal` aborts: the holder is then killed, and its disks go with it.
   */
  runInHolder(handle: ContainerHandle, stdout: Writable, stderr: Writable, signal: AbortSignal): Promise<ExitStatus>;
  /** Extracts a tar stream into the container at `dir` (a path inside its /work volume). */
  putArchive(handle: ContainerHandle, dir: string, tar: Readable): Promise<void>;
  /** Starts the container, copying its stdout and stderr (which may be the same stream) until it exits. */
  start(handle: ContainerHandle, stdout: Writable, stderr?: Writable): Promise<void>;
  /** Waits for the container to exit. Rejects when `signal` aborts (the container is then killed). */
  wait(handle: ContainerHandle, signal: AbortSignal): Promise<ExitStatus>;
  /** Which of the container's disks are full now, measured in its holder (none when it has no disks or they cannot be measured). */
  fullDisks(handle: ContainerHandle): Promise<DiskName[]>;
  /** A tar stream of `path` in the (stopped) container; rejects with code artifact_missing when there is none. */
  getArchive(handle: ContainerHandle, path: string): Promise<Readable>;
  /** Kills and removes the container, and its disks when the handle has them. Idempotent; "already gone" is success. */
  destroy(handle: Pick<ContainerHandle, 'id' | 'disks'>): Promise<void>;
  /** Ids of containers carrying all the given labels (any state). */
  list(labels: Record<string, string>): Promise<{ id: string; labels: Record<string, string> }[]>;
  /** Names of the disk volumes carrying all the given labels. */
  listDisks(labels: Record<string, string>): Promise<{ name: string; labels: Record<string, string> }[]>;
  /** Removes a disk volume; one still in use (or gone) is left as it is. */
  removeDisk(name: string): Promise<void>;
  /** Makes the spec's writable caches (its build cache, a writable module cache) usable by the build user, starts trimming the build cache to its bound when due (beside the build, not awaited) and empties a module cache past its bound when due (before, awaited); nothing for a spec with none. Idempotent. */
  prepareCache(spec: ContainerSpec): Promise<void>;
}
