import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import { createApp } from '../api/app.js';
import { BuildRepository } from '../builds/build-repository.js';
import { HostReleases } from '../builds/host-releases.js';
import { RetentionSweeper } from '../builds/retention-sweeper.js';
import { CallbackDeliveries } from '../api/callback-deliveries.js';
import { API_SETTINGS, sliceOf, WORKER_SETTINGS, type Config } from '../config.js';
import { createLogger } from '../log.js';
import { createMetrics } from '../metrics.js';
import { BuildQueue } from '../queue/build-queue.js';
import { CancelChannel } from '../queue/cancel-channel.js';
import { connectRedis, waitForRedis } from '../queue/redis-connection.js';
import { WorkerRegistry } from '../queue/worker-registry.js';
import { openEngine } from '../runtime/engine.js';
import { TENANT_VOLUME_PREFIXES } from '../runtime/cache-volume-sweeper.js';
import { HttpBlobStore } from '../store/http-blob-store.js';
import { openBlobStore, type OpenedBlobStore } from '../store/open-blob-store.js';
import { BuildWorker } from '../worker/build-worker.js';
import { startMetricsServer } from '../worker/metrics-server.js';
import type { BuildRuntime } from '../runtime/build-runtime.js';
import type { ToolchainImage } from '../images/image-catalog.js';
import type { LoadCapabilities } from '../worker/load-capabilities.js';
import { UsageError } from '../usage-error.js';
import { withDeadline } from '../deadline.js';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { Lifecycle } from './lifecycle.js';
import { redactUrls } from '../redact-url.js';

export interface RunningService {
  port?: number;
  /** The port of a worker-only process's /metrics (PLUGFORGE_WORKER_METRICS_PORT). */
  metricsPort?: number;
  worker?: BuildWorker;
  stop(): Promise<void>;
}

/** What the tests may give startService in place of the real engine. */
export interface ServiceOptions {
  /** Run builds on this runtime instead of the Docker engine (orchestration tests). */
  runtime?: BuildRuntime;
  /** With `runtime`: the toolchain images the worker reports. */
  images?: ToolchainImage[];
  /** What the worker can load per image (by default found out on its engine). */
  loads?: LoadCapabilities;
}

/** A running part of a process, and how it stops (src/cli/lifecycle.ts). */
type Started<T> = { value: T; stop: () => Promise<unknown> };

interface Shared {
  log: Logger;
  metrics: Metrics;
  store: OpenedBlobStore;
  redis: Redis;
  repo: BuildRepository;
  registry: WorkerRegistry;
  cancel: CancelChannel;
  onRedisError: (err: Error) => void;
}

/**
 * Starts the API, a worker, or both (serve), from one configuration. Used by the CLI and
 * by the tests, which run the real service in-process. Each part starts and stops itself;
 * they stop in reverse order of starting, and a part that fails to start stops the ones
 * before it.
 */
export async function startService(
  mode: 'serve' | 'api' | 'worker',
  config: Config,
  options: ServiceOptions = {},
): Promise<RunningService> {
  const life = new Lifecycle();
  try {
    const shared = await life.start('shared', () => startShared(mode, config));
    const worker = mode === 'api' ? undefined : await life.start('worker', () => startWorker(shared, config, options));
    // A worker-only process has no API to serve its metrics from: it gets a port of its own.
    const metricsPort =
      mode === 'worker' && config.workerMetricsPort !== undefined
        ? await life.start('metrics', () => startWorkerMetrics(shared, config))
        : undefined;
    const port = mode === 'worker' ? undefined : await life.start('api', () => startApi(mode, shared, config));
    return {
      ...(port !== undefined ? { port } : {}),
      ...(metricsPort !== undefined ? { metricsPort } : {}),
      ...(worker ? { worker } : {}),
      stop: () => life.stop(),
    };
  } catch (err) {
    await life.stop();
    throw err;
  }
}

/** The blob store and the Redis connection every part shares (the API's own in serve). */
async function startShared(mode: 'serve' | 'api' | 'worker', config: Config): Promise<Started<Shared>> {
  const log = createLogger(config.logLevel);
  const store = await openBlobStore(config, path.join(config.dataDir, 'blobs'));
  await mkdir(config.dataDir, { recursive: true });
  await store.init();
  const onRedisError = (err: Error) => log.warn({ err: err.message, redis: redactUrls(config.redisUrl) }, 'Redis unreachable; retrying');
  const redis = connectRedis(config.redisUrl, mode === 'api' ? 'api' : 'worker', onRedisError);
  try {
    await waitForRedis(redis, redactUrls(config.redisUrl), 10_000);
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const shared = {
    log,
    metrics: createMetrics(),
    store,
    redis,
    repo: new BuildRepository(redis, undefined, config.maxLogLines),
    registry: WorkerRegistry.forQueue(redis, config.queueName),
    cancel: CancelChannel.forQueue(config.queueName),
    onRedisError,
  };
  return { value: shared, stop: async () => redis.disconnect() };
}

/** A build worker on the Docker engine (or the runtime the tests give), with connections of its own. */
async function startWorker(shared: Shared, config: Config, options: ServiceOptions): Promise<Started<BuildWorker>> {
  const { metrics, onRedisError } = shared;
  // Per-tenant cache volumes idle for PLUGFORGE_CACHE_IDLE_DAYS go from this worker's engine.
  const cacheSweep = {
    redis: shared.redis,
    options: { idleMs: config.build.cacheIdleMs, prefixes: [...TENANT_VOLUME_PREFIXES, `${config.modules.cacheVolume}-`] },
    onError: (err: Error) => shared.log.warn({ err: err.message }, 'cache volume sweep failed; trying again at the next'),
  };
  const engine = options.runtime ? undefined : openEngine(config.dockerHost, cacheSweep);
  if (engine) {
    await engine.images.ping().catch((err: Error) => {
      throw new Error(`The Docker engine does not answer (${err.message}). Start dockerd, or point PLUGFORGE_DOCKER_HOST at one.`);
    });
  }
  const volumes = engine?.volumes;
  const workerRedis = connectRedis(config.redisUrl, 'worker', onRedisError);
  const subscriber = connectRedis(config.redisUrl, 'worker', onRedisError);
  const worker = new BuildWorker({
    config: sliceOf(config, WORKER_SETTINGS),
    connection: workerRedis,
    subscriber,
    repo: shared.repo,
    registry: shared.registry,
    cancel: shared.cancel,
    runtime: options.runtime ?? engine!.runtime,
    // A worker sharing no disk with the API moves its blobs through the API (docs/deployment.md).
    store: config.remoteWorkers.api ? new HttpBlobStore(config.remoteWorkers.api) : shared.store,
    ...(engine ? { imageEngine: engine.images } : {}),
    ...(options.images ? { staticImages: options.images } : {}),
    ...(options.loads ? { loads: options.loads } : {}),
    log: shared.log.child({ part: 'worker' }),
    onModules: ({ downloaded, cached }) => {
      metrics.modules.inc({ source: 'downloaded' }, downloaded);
      metrics.modules.inc({ source: 'cache' }, cached);
    },
    onTargetFinished: ({ status, durationMs, target, phases }) => {
      metrics.targetsFinished.inc({ status, target });
      metrics.targetDuration.observe({ target }, durationMs / 1000);
      for (const [phase, ms] of Object.entries(phases ?? {})) metrics.targetPhase.observe({ phase }, ms / 1000);
    },
  });
  const disconnect = () => {
    workerRedis.disconnect();
    subscriber.disconnect();
  };
  await worker.start().catch((err: unknown) => {
    disconnect();
    throw err;
  });
  volumes?.start();
  return {
    value: worker,
    stop: async () => {
      await withDeadline(volumes?.stop() ?? Promise.resolve(), 3_000, undefined);
      await worker.stop();
      disconnect();
    },
  };
}

/** /metrics of a worker-only process, on PLUGFORGE_WORKER_METRICS_PORT. */
async function startWorkerMetrics(shared: Shared, config: Config): Promise<Started<number>> {
  const endpoint = await startMetricsServer(shared.metrics, config.workerMetricsPort ?? 0, config.host);
  shared.log.info({ port: endpoint.port, host: config.host }, 'worker metrics listening');
  return {
    value: endpoint.port,
    stop: async () => {
      await new Promise<void>((resolve) => endpoint.server.close(() => resolve()));
      endpoint.server.closeAllConnections();
    },
  };
}

/** The HTTP API and the retention sweeper, on a Redis connection of their own in serve. */
async function startApi(mode: 'serve' | 'api', shared: Shared, config: Config): Promise<Started<number>> {
  const { log, metrics, store } = shared;
  const apiRedis = mode === 'api' ? shared.redis : connectRedis(config.redisUrl, 'api', shared.onRedisError);
  const ownRedis = apiRedis !== shared.redis;
  await waitForRedis(apiRedis, redactUrls(config.redisUrl), 10_000);
  const repo = ownRedis ? new BuildRepository(apiRedis, undefined, config.maxLogLines) : shared.repo;
  const queue = new BuildQueue(apiRedis, config.queueName, config.build.attempts);
  const deliveries = new CallbackDeliveries(apiRedis, repo, config, log.child({ part: 'callbacks' }));
  const app = createApp({
    config: sliceOf(config, API_SETTINGS),
    deliveries,
    redis: apiRedis,
    repo,
    queue,
    registry: ownRedis ? WorkerRegistry.forQueue(apiRedis, config.queueName) : shared.registry,
    cancel: shared.cancel,
    store,
    metrics,
    log: log.child({ part: 'api' }),
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.port, config.host, () => resolve(s));
    s.on('error', reject);
  }).catch(async (err: unknown) => {
    await withDeadline(queue.close(), 3_000, undefined);
    if (ownRedis) apiRedis.disconnect();
    throw err;
  });
  // Requests with Expect: 100-continue go to the app too, which sends 100 only when it wants the body.
  server.on('checkContinue', app);
  // Uploads are paced by UploadGuard; the socket timeouts only catch the dead.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ port, host: config.host }, 'API listening');
  const retention = new RetentionSweeper(
    apiRedis,
    repo,
    store,
    config.retention,
    log.child({ part: 'retention' }),
    (report) => {
      metrics.retentionRemoved.inc({ kind: 'build' }, report.builds);
      metrics.retentionRemoved.inc({ kind: 'blob' }, report.blobs);
      metrics.retentionRemoved.inc({ kind: 'temp' }, report.temps);
      metrics.retentionBytes.inc(report.bytes);
    },
    () => new HostReleases(apiRedis, config.queueName, store, config.hosts.maxPerTenant).blobs(),
  );
  retention.start();
  deliveries.start();
  return {
    value: port,
    stop: async () => {
      await withDeadline(retention.stop(), 3_000, undefined);
      await withDeadline(deliveries.stop(), 3_000, undefined);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await withDeadline(queue.close(), 3_000, undefined);
      if (ownRedis) apiRedis.disconnect();
    },
  };
}

export async function serveCommand(mode: 'serve' | 'api' | 'worker', args: string[], config: Config): Promise<number> {
  if (args.length)
    throw new UsageError(`plugforge ${mode} takes no arguments (configure it with PLUGFORGE_* variables)`, `usage: plugforge ${mode}`);
  const service = await startService(mode, config);
  if (service.port !== undefined) {
    const url = config.publicUrl ?? `http://localhost:${service.port}`;
    process.stderr.write(`plugforge ${mode}: API at ${url} (Redis ${redactUrls(config.redisUrl)}, data ${config.dataDir})\n`);
  } else {
    const metricsAt = service.metricsPort !== undefined ? `, metrics at http://${config.host}:${service.metricsPort}/metrics` : '';
    process.stderr.write(`plugforge worker ${service.worker?.id}: taking builds from ${redactUrls(config.redisUrl)}${metricsAt}\n`);
  }
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.stderr.write(`plugforge ${mode}: ${signal}, stopping (running builds finish first)\n`);
      resolve();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  await service.stop();
  return 0;
}
