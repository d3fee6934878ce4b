import { defineConfig } from 'vitest/config';

/**
 * The tests in three tiers, by what they need:
 *
 * - fast: nothing, or only Redis (a fake runtime stands in for Docker). Files in parallel.
 *   Every test file not named below is in it.
 * - docker: a Docker engine and the Go 1.22 builder images (plugforge/build:1.22.12-*), in
 *   two projects: `docker`, files two at a time (each builds with its own service, queue and
 *   tenants; two cores), then `docker-alone`, one at a time: the files that time the event
 *   loop, fill memory or disks on purpose, or sweep what the whole engine holds.
 * - system: images of other releases built, the toolchain fetch image, the fleet under
 *   docker-compose, the fault suites, the S3 server. One at a time.
 *
 * `vitest run` runs them in that order (sequence.groupOrder); `--project <name>` one.
 */
const DOCKER = [
  'build-evidence',
  'build-reuse',
  'build-service',
  'bundle',
  'ci-integrations',
  'cli-idempotency',
  'cli-image',
  'cli-package',
  'cli-build',
  'gin-host',
  'go-buildinfo',
  'host-matching',
  'host-matrix',
  'host-releases',
  'modules',
  'openapi',
  'package-fingerprints',
  'provenance',
].map((name) => `test/${name}.test.ts`);

const DOCKER_ALONE = [
  'cache-trim',
  'cache-volume-sweeper',
  'hostile-tenant-leaks',
  'hostile-tenant-parsing',
  'hostile-tenant-sharing',
  'hostile-tenant-storage',
  'hostile-tenant-toolchain',
  'probe-capabilities',
  'remote-worker',
  'runtime-contract-docker',
  'security-hostile',
  'security-tenants',
  'security-uploads',
  'web-page',
].map((name) => `test/${name}.test.ts`);

const SYSTEM = [
  'builder-images',
  'faults-disk',
  'faults-engine',
  'faults-redis',
  'faults-streams',
  'faults-worker-kill',
  'fleet',
  'images-on-demand',
  's3-blob-store',
  'toolchain-module',
].map((name) => `test/${name}.test.ts`);

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'fast',
          include: ['test/**/*.test.ts'],
          exclude: [...DOCKER, ...DOCKER_ALONE, ...SYSTEM],
          // The CLI's tests run bin/plugforge.js: dist/ is built first when older than src/.
          globalSetup: ['test/support/compiled-dist.ts'],
          // Mostly waiting on Redis, timers and child processes: more files than cores.
          fileParallelism: true,
          maxWorkers: 4,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'docker',
          include: DOCKER,
          globalSetup: ['test/support/compiled-dist.ts'],
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'docker-alone',
          include: DOCKER_ALONE,
          globalSetup: ['test/support/compiled-dist.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: SYSTEM,
          globalSetup: ['test/support/compiled-dist.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
});
