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
}

/**
 * Executes ContainerSpecs. Implementations: DockerRuntime (a real engine) and, for tests of
 * orchestration, a scripted fake. Errors that say the engine is unreachable are
 * PlugforgeErrors with retryable = true; everything else about one container is final.
 * Concurrency: any number of containers at once, from any number of workers on one engine;
 * calls on one handle are made in order (create, putArchive, start, wait, getArchive,
 * destroy). Idempotent where a crashed worker's successor repeats them: destroy,
 * removeDisk, prepareCache.
 */
export interface BuildRuntime {
  /**
   * Creates (does not start) the container, on disks of its own, or on `disks`: those of
   * another container of the same target (the loading probe on its build's, which left the
   * artifact and the probe there). Either container's destroy removes the disks; the other's
   * then finds them gone.
   */
  create(spec: ContainerSpec, disks?: ContainerHandle['disks']): Promise<ContainerHandle>;
  /** Extracts a tar stream into the container at `dir` (a path inside its /work volume). */
  putArchive(handle: ContainerHandle, dir: string, tar: Readable): Promise<void>;
  /** Starts the container, copying its stdout and stderr (which may be the same stream) until it exits. */
  start(handle: ContainerHandle, stdout: Writable, stderr?: Writable): Promise<void>;
  /** Waits for the container to exit. Rejects when `signal` aborts (the container is then killed). */
  wait(handle: ContainerHandle, signal: AbortSignal): Promise<ExitStatus>;
  /** Which of the container's disks are full now (none when it has no disks or they cannot be measured). */
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
  /** Makes the spec's writable caches (its build cache, a writable module cache) usable by the build user, and trims the build cache to its bound; nothing for a spec with none. Idempotent. */
  prepareCache(spec: ContainerSpec): Promise<void>;
}
