import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import { createApp } from '../api/app.js';
import { BuildRepository } from '../builds/build-repository.js';
import { RetentionSweeper } from '../builds/retention-sweeper.js';
import type { Config } from '../config.js';
import { createLogger } from '../log.js';
import { createMetrics } from '../metrics.js';
import { BuildQueue } from '../queue/build-queue.js';
import { CancelChannel } from '../queue/cancel-channel.js';
import { connectRedis, waitForRedis } from '../queue/redis-connection.js';
import { WorkerRegistry } from '../queue/worker-registry.js';
import { createDockerClient } from '../runtime/docker-client.js';
import { DockerRuntime } from '../runtime/docker-runtime.js';
import { FsBlobStore } from '../store/fs-blob-store.js';
import { BuildWorker } from '../worker/build-worker.js';
import { startMetricsServer } from '../worker/metrics-server.js';
import type { BuildRuntime } from '../runtime/build-runtime.js';
import type { ToolchainImage } from '../images/image-catalog.js';
import type { LoadCapabilities } from '../worker/load-capabilities.js';
import { UsageError } from '../usage-error.js';
import { withDeadline } from '../deadline.js';

export interface RunningService {
  port?: number;
  /** The port of a worker-only process's /metrics (PLUGFORGE_WORKER_METRICS_PORT). */
  metricsPort?: number;
  worker?: BuildWorker;
  stop(): Promise<void>;
}

/**
 * Starts the API, a worker, or both (serve), from one configuration. Used by the CLI and
 * by the tests, which run the real service in-process.
 */
export interface ServiceOptions {
  /** Run builds on this runtime instead of the Docker engine (orchestration tests). */
  runtime?: BuildRuntime;
  /** With `runtime`: the toolchain images the worker reports. */
  images?: ToolchainImage[];
  /** What the worker can load per image (by default found out on its engine). */
  loads?: LoadCapabilities;
}

export async function startService(mode: 'serve' | 'api' | 'worker', config: Config, options: ServiceOptions = {}): Promise<RunningService> {
  const log = createLogger(config.logLevel);
  const metrics = createMetrics();
  const store = new FsBlobStore(path.join(config.dataDir, 'blobs'));
  await mkdir(config.dataDir, { recursive: true });
  await store.init();

  const onRedisError = (err: Error) => log.warn({ err: err.message, redis: config.redisUrl }, 'Redis unreachable; retrying');
  const redis = connectRedis(config.redisUrl, mode === 'api' ? 'api' : 'worker', onRedisError);
  await waitForRedis(redis, config.redisUrl, 10_000);
  const repo = new BuildRepository(redis);
  const registry = WorkerRegistry.forQueue(redis, config.queueName);
  const cancel = CancelChannel.forQueue(config.queueName);
  const closers: (() => Promise<unknown>)[] = [];

  let worker: BuildWorker | undefined;
  if (mode !== 'api') {
    const docker = options.runtime ? undefined : createDockerClient(config.dockerHost);
    if (docker) {
      try {
        await docker.ping();
      } catch (err) {
        redis.disconnect();
        throw new Error(`The Docker engine does not answer (${(err as Error).message}). Start dockerd, or point PLUGFORGE_DOCKER_HOST at one.`);
      }
    }
    const workerRedis = connectRedis(config.redisUrl, 'worker', onRedisError);
    const subscriber = connectRedis(config.redisUrl, 'worker', onRedisError);
    worker = new BuildWorker({
      config,
      connection: workerRedis,
      subscriber,
      repo,
      registry,
      cancel,
      runtime: options.runtime ?? new DockerRuntime(docker!),
      store,
      ...(docker ? { docker } : {}),
      ...(options.images ? { staticImages: options.images } : {}),
      ...(options.loads ? { loads: options.loads } : {}),
      log: log.child({ part: 'worker' }),
      onModules: ({ downloaded, cached }) => {
        metrics.modules.inc({ source: 'downloaded' }, downloaded);
        metrics.modules.inc({ source: 'cache' }, cached);
      },
      onTargetFinished: ({ status, durationMs, target }) => {
        metrics.targetsFinished.inc({ status, target });
        metrics.targetDuration.observe({ target }, durationMs / 1000);
      },
    });
    await worker.start();
    closers.push(async () => {
      await worker?.stop();
      workerRedis.disconnect();
      subscriber.disconnect();
    });
  }

  // A worker-only process has no API to serve its metrics from: it gets a port of its own.
  let metricsPort: number | undefined;
  if (mode === 'worker' && config.workerMetricsPort !== undefined) {
    const endpoint = await startMetricsServer(metrics, config.workerMetricsPort, config.host);
    metricsPort = endpoint.port;
    log.info({ port: metricsPort, host: config.host }, 'worker metrics listening');
    closers.unshift(async () => {
      await new Promise<void>((resolve) => endpoint.server.close(() => resolve()));
      endpoint.server.closeAllConnections();
    });
  }

  let server: Server | undefined;
  let port: number | undefined;
  if (mode !== 'worker') {
    const apiRedis = mode === 'api' ? redis : connectRedis(config.redisUrl, 'api', onRedisError);
    await waitForRedis(apiRedis, config.redisUrl, 10_000);
    const queue = new BuildQueue(apiRedis, config.queueName, config.build.attempts);
    const app = createApp({ config, redis: apiRedis, repo: new BuildRepository(apiRedis), queue, registry: WorkerRegistry.forQueue(apiRedis, config.queueName), cancel, store, metrics, log: log.child({ part: 'api' }) });
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(config.port, config.host, () => resolve(s));
      s.on('error', reject);
    });
    // Requests with Expect: 100-continue go to the app too, which sends 100 only when it wants the body.
    server.on('checkContinue', app);
    // Uploads are paced by UploadGuard; the socket timeouts only catch the dead.
    server.requestTimeout = 0;
    server.headersTimeout = 30_000;
    const address = server.address();
    port = typeof address === 'object' && address ? address.port : config.port;
    log.info({ port, host: config.host }, 'API listening');
    const retention = new RetentionSweeper(apiRedis, new BuildRepository(apiRedis), store, config.retention, log.child({ part: 'retention' }), (report) => {
      metrics.retentionRemoved.inc({ kind: 'build' }, report.builds);
      metrics.retentionRemoved.inc({ kind: 'blob' }, report.blobs);
      metrics.retentionRemoved.inc({ kind: 'temp' }, report.temps);
      metrics.retentionBytes.inc(report.bytes);
    });
    retention.start();
    closers.unshift(async () => {
      await withDeadline(retention.stop(), 3_000, undefined);
      await new Promise<void>((resolve) => server?.close(() => resolve()));
      server?.closeAllConnections();
      await withDeadline(queue.close(), 3_000, undefined);
      if (apiRedis !== redis) apiRedis.disconnect();
    });
  }
  closers.push(async () => redis.disconnect());

  return {
    ...(port !== undefined ? { port } : {}),
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    ...(worker ? { worker } : {}),
    async stop() {
      for (const close of closers) await close().catch(() => undefined);
    },
  };
}

export async function serveCommand(mode: 'serve' | 'api' | 'worker', args: string[], config: Config): Promise<number> {
  if (args.length) throw new UsageError(`plugforge ${mode} takes no arguments (configure it with PLUGFORGE_* variables)`, `usage: plugforge ${mode}`);
  const service = await startService(mode, config);
  if (service.port !== undefined) {
    const url = config.publicUrl ?? `http://localhost:${service.port}`;
    process.stderr.write(`plugforge ${mode}: API at ${url} (Redis ${config.redisUrl}, data ${config.dataDir})\n`);
  } else {
    const metricsAt = service.metricsPort !== undefined ? `, metrics at http://${config.host}:${service.metricsPort}/metrics` : '';
    process.stderr.write(`plugforge worker ${service.worker?.id}: taking builds from ${config.redisUrl}${metricsAt}\n`);
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
