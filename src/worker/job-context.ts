import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BuildRepository } from '../builds/build-repository.js';
import type { PhaseTimings } from '../builds/build-document.js';
import type { WorkerConfig } from '../config.js';
import type { ToolchainImage } from '../images/image-catalog.js';
import type { Logger } from '../log.js';
import type { BuildJobData, BuildQueue } from '../queue/build-queue.js';
import type { CancelChannel } from '../queue/cancel-channel.js';
import type { WorkerRegistry, WorkerReport } from '../queue/worker-registry.js';
import type { BuildRuntime } from '../runtime/build-runtime.js';
import type { ImageEngine } from '../runtime/image-engine.js';
import type { WorkerBlobs } from '../store/blob-store.js';
import type { LoadCapabilities } from './load-capabilities.js';

export interface BuildWorkerDeps {
  config: WorkerConfig;
  /** BullMQ's connection (maxRetriesPerRequest: null). */
  connection: Redis;
  /** A second connection, put in subscriber mode for cancel requests. */
  subscriber: Redis;
  repo: BuildRepository;
  registry: WorkerRegistry;
  cancel: CancelChannel;
  runtime: BuildRuntime;
  store: WorkerBlobs;
  /** The engine whose builder images this worker reports, checks and makes; absent with a fake runtime. */
  imageEngine?: ImageEngine;
  /** Images to report when there is no engine to ask (fake runtimes in tests). */
  staticImages?: ToolchainImage[];
  /** What this worker can load per image; by default found out on its engine (tests script it). */
  loads?: LoadCapabilities;
  log: Logger;
  /** Observers for metrics. */
  onTargetFinished?: (outcome: { status: string; durationMs: number; target: string; phases?: PhaseTimings }) => void;
  onModules?: (counts: { downloaded: number; cached: number }) => void;
}

/**
 * What the handler of a job's kind (images, dependencies, a target) gets from the worker
 * that took the job: its parts, its identity, and the worker's own bookkeeping (running
 * jobs, teardowns, hand-over), which the worker keeps so that cancels and the sweep see
 * every job of the process.
 */
export interface JobContext {
  readonly deps: BuildWorkerDeps;
  readonly workerId: string;
  readonly instanceId: string;
  readonly queue: BuildQueue;
  readonly loads: LoadCapabilities;
  /** The builder images on this worker's engine (the last heartbeat's list). */
  images(): ToolchainImage[];
  /** A fresher list, read by an image job that made or waited for images. */
  setImages(images: ToolchainImage[]): void;
  /** Marks a job as running here: cancels reach it, the sweep leaves its containers alone. */
  running(jobId: string, buildId: string): void;
  done(jobId: string): void;
  /** Removes the containers and disks carrying `labels` (an earlier run's of the same job). */
  removeContainers(labels: Record<string, string>): Promise<void>;
  /** Leaves the job to another live worker that `can` run it (DelayedError thrown), or returns when none does. */
  handOver(job: Job<BuildJobData>, token: string | undefined, can: (w: WorkerReport) => boolean, reason: string): Promise<void>;
  /** Lets a job's teardown go on after its slot is freed; a stopping worker waits for it. */
  tearDownLater(jobId: string, work: Promise<void>): void;
}
