import type { Redis } from 'ioredis';
import type { BuildRepository } from '../builds/build-repository.js';
import type { ApiConfig } from '../config.js';
import type { ToolchainCatalog } from '../images/image-catalog.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { BuildQueue } from '../queue/build-queue.js';
import type { CancelChannel } from '../queue/cancel-channel.js';
import type { WorkerReport, WorkerRegistry } from '../queue/worker-registry.js';
import type { BlobStore } from '../store/blob-store.js';
import type { CallbackDeliveries } from './callback-deliveries.js';

export interface ApiDeps {
  config: ApiConfig;
  redis: Redis;
  repo: BuildRepository;
  queue: BuildQueue;
  registry: WorkerRegistry;
  cancel: CancelChannel;
  store: BlobStore;
  metrics: Metrics;
  log: Logger;
  /** Build callbacks (started and stopped with the API). */
  deliveries: CallbackDeliveries;
}

/** The toolchains the live workers report (the API has no Docker engine of its own). */
export function catalogFromWorkers(workers: WorkerReport[], repo: string): ToolchainCatalog {
  const seen = new Map<string, ToolchainCatalog['images'][number]>();
  for (const w of workers) {
    if (!w.dockerReachable || w.imageRepo !== repo) continue;
    for (const img of w.images) if (!seen.has(img.image)) seen.set(img.image, img);
  }
  return { repo, images: [...seen.values()] };
}

/**
 * How the live workers can load each image's plugins for verification: the first loader
 * any worker reports ("qemu-i386-static", "natively", …), else why none can ("unavailable:
 * …"); images no worker has checked yet are left out.
 */
export function loadingFromWorkers(workers: WorkerReport[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const w of workers) {
    if (!w.dockerReachable) continue;
    for (const [image, c] of Object.entries(w.load ?? {})) {
      const known = out.get(image);
      if (c.how) {
        if (!known || known.startsWith('unavailable')) out.set(image, c.how);
      } else if (!known) out.set(image, `unavailable: ${c.unavailable ?? 'unknown'}`);
    }
  }
  return out;
}
