import type { Redis } from 'ioredis';
import type { BuildRuntime } from './build-runtime.js';
import { CacheVolumeSweeper, type CacheVolumeSweepOptions } from './cache-volume-sweeper.js';
import { createDockerClient } from './docker-client.js';
import { DockerImageEngine } from './docker-image-engine.js';
import { DockerRuntime } from './docker-runtime.js';
import type { ImageEngine } from './image-engine.js';

/** One container engine, as plugforge uses it: builds' containers, builder images, and the idle cache volumes' sweep. */
export interface Engine {
  runtime: BuildRuntime;
  images: ImageEngine;
  /** Present when asked for (openEngine's `cacheSweep`); the runtime tells it each cache volume a build uses. */
  volumes?: CacheVolumeSweeper;
}

/** What the sweep of idle per-tenant cache volumes needs (CacheVolumeSweeper). */
export interface CacheSweepSettings {
  redis: Redis;
  options: CacheVolumeSweepOptions;
  onError: (err: Error) => void;
}

/**
 * The Docker engine at `dockerHost` (unix://, tcp://; absent: DOCKER_HOST or the local
 * socket), all parts on one client. Connects lazily: `images.ping()` says whether it answers.
 */
export function openEngine(dockerHost?: string, cacheSweep?: CacheSweepSettings): Engine {
  const docker = createDockerClient(dockerHost);
  const volumes = cacheSweep ? new CacheVolumeSweeper(docker, cacheSweep.redis, cacheSweep.options, cacheSweep.onError) : undefined;
  const runtime = new DockerRuntime(docker, volumes ? (names) => volumes.used(names) : undefined);
  return { runtime, images: new DockerImageEngine(docker), ...(volumes ? { volumes } : {}) };
}
