import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.js';
import { completeVersions, listToolchainImages, resolveGoVersion } from '../../src/images/image-catalog.js';
import { createDockerClient } from '../../src/runtime/docker-client.js';
import { DockerImageEngine } from '../../src/runtime/docker-image-engine.js';
import { TARGET_IDS } from '../../src/contract/targets.js';
import { eventually, EventuallyTimeout } from './eventually.js';

/**
 * What the integration tests need, and how they say it is missing. They use Redis
 * database 9 (PLUGFORGE_TEST_REDIS_URL to change it), so a plugforge serving on the same
 * Redis (database 0) is not disturbed.
 */
export const TEST_REDIS_URL = process.env.PLUGFORGE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/9';
export const TEST_GO = '1.22';
export const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

export async function requireRedis(): Promise<Redis> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 3000 });
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (err) {
    redis.disconnect();
    throw new Error(
      `This test needs Redis at ${TEST_REDIS_URL} and cannot reach it (${(err as Error).message}). ` +
        `Run the whole suite with ./scripts/test (it starts Redis), or start one: redis-server --daemonize yes`,
      { cause: err },
    );
  }
}

export async function requireDocker(): Promise<Docker> {
  const docker = createDockerClient(process.env.PLUGFORGE_DOCKER_HOST);
  try {
    await docker.ping();
    return docker;
  } catch (err) {
    throw new Error(
      `This test needs a Docker engine and cannot reach it (${(err as Error).message}). ` +
        `Run the whole suite with ./scripts/test (it installs and starts dockerd), or start one: dockerd &`,
      { cause: err },
    );
  }
}

/** The exact Go release of the test toolchain, whose images must be present for all four targets. */
export async function requireImages(docker: Docker, go = TEST_GO, repo = 'plugforge/build'): Promise<string> {
  const catalog = await listToolchainImages(new DockerImageEngine(docker), repo);
  try {
    return resolveGoVersion(catalog, go, TARGET_IDS);
  } catch {
    throw new Error(
      `This test needs the ${repo} images of Go ${go} for ${TARGET_IDS.join(', ')} (present: ${completeVersions(catalog, []).join(', ') || 'none'}). ` +
        `Build them with: node bin/plugforge.js images build --go ${go} (./scripts/test does this).`,
    );
  }
}

/** A configuration for an in-process service: its own queue, data directory and a free port. */
export async function testConfig(overrides: Record<string, string> = {}): Promise<Config> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-test-'));
  return loadConfig({
    PLUGFORGE_REDIS_URL: TEST_REDIS_URL,
    PLUGFORGE_DATA_DIR: dataDir,
    PLUGFORGE_PORT: '0',
    PLUGFORGE_HOST: '127.0.0.1',
    PLUGFORGE_QUEUE: `test-${randomBytes(4).toString('hex')}`,
    PLUGFORGE_LOG_LEVEL: process.env.PLUGFORGE_TEST_LOG_LEVEL ?? 'warn',
    PLUGFORGE_WORKER_CONCURRENCY: '2',
    // Tests of runs submit the same sources again and again and mean each to run;
    // reuse has its own tests (test/build-reuse.test.ts), which turn it on.
    PLUGFORGE_REUSE: 'off',
    ...overrides,
  });
}

/**
 * The containers matching `filters` once the worker's teardown has had its moment: a
 * target's result is recorded before its containers are removed (src/worker/pipeline.ts),
 * so a test that saw a build end waits up to `timeoutMs` for them to go, and gets whatever
 * is still there then.
 */
export async function containersLeft(docker: Docker, labels: string[], timeoutMs = 20_000): Promise<Docker.ContainerInfo[]> {
  let left: Docker.ContainerInfo[] = [];
  const gone = async () => (left = await docker.listContainers({ all: true, filters: JSON.stringify({ label: labels }) })).length === 0;
  try {
    await eventually(gone, { timeoutMs, intervalMs: 200 });
  } catch (err) {
    // At the timeout, what is still there is the answer; an engine that does not answer is an error.
    if (!(err instanceof EventuallyTimeout)) throw err;
  }
  return left;
}
