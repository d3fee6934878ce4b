import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { loadConfig } from '../src/config.js';
import { DockerRuntime } from '../src/runtime/docker-runtime.js';
import { BUILD_UID } from '../src/runtime/build-spec.js';
import { plan, planDependencies } from '../src/worker/plan.js';
import { requireDocker, requireImages } from './support/env.js';

/**
 * The per-tenant build cache has a bound (PLUGFORGE_CACHE_MAX_MB): past it, the worker
 * trims it before a build, least recently used files first, down to 80 % of the bound.
 * Real Docker, a real cache volume.
 */
let docker: Docker;
let go = '';
const tenant = `trim${randomBytes(4).toString('hex')}`;
let volume = '';
let modules = '';

beforeAll(async () => {
  docker = await requireDocker();
  go = await requireImages(docker);
});

afterAll(async () => {
  for (const v of [volume, modules])
    if (v)
      await docker
        .getVolume(v)
        .remove({ force: true })
        .catch(() => undefined);
});

/** Runs a shell command as the build user with the volume at /cache; resolves to its stdout. */
async function inVolume(image: string, script: string, target = volume): Promise<string> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['sh', '-c', script],
    User: `${BUILD_UID}:${BUILD_UID}`,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      Mounts: [
        {
          Type: 'volume',
          Source: target,
          Target: '/cache',
          ReadOnly: false,
          VolumeOptions: { NoCopy: true } as Docker.MountSettings['VolumeOptions'],
        },
      ],
    },
  });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    container.modem.demuxStream(stream, out, new PassThrough().resume());
    const ended = new Promise((resolve) => stream.once('end', resolve));
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    await ended;
    expect(res.StatusCode, Buffer.concat(chunks).toString()).toBe(0);
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    await container.remove({ force: true });
  }
}

/** A one-target build record of this test's tenant, with or without requirements. */
function trimRecord(id: string, requirements: boolean): BuildRecord {
  return {
    id,
    tenant,
    createdAt: new Date().toISOString(),
    go,
    goRequested: go,
    name: 'trim',
    mode: 'plugin',
    host: 'generic',
    targetIds: ['linux-amd64'],
    source: { sha256: 'a'.repeat(64), size: 1, module: 'example.com/trim', vendored: false, requirements },
  };
}

describe('the build cache bound', () => {
  it('trims a cache past its bound beside a build, least recently used first, and leaves one within it alone', async () => {
    const record = trimRecord('trim1', false);
    const spec = plan(record, 'linux-amd64', loadConfig({ PLUGFORGE_CACHE_MAX_MB: '16' }), {
      workerId: 'trim',
      instanceId: `trim-${tenant}`,
    }).container;
    volume = spec.cacheVolume!;
    // Made, seeded with the image's precompiled standard library (then trimmed to this small
    // bound at once) and handed to the build user, as before any build.
    const first = new DockerRuntime(docker);
    await first.prepareCache(spec);
    await first.trimsDone();
    expect(
      (await inVolume(spec.image, 'test -e /cache/.plugforge-seed/done && find /cache/[0-9a-f][0-9a-f] -type f | wc -l')).trim(),
    ).not.toBe('0');
    // From here on, a cache with only what this test writes (the seed's mark stays: not seeded again).
    await inVolume(spec.image, 'rm -rf /cache/[0-9a-f][0-9a-f]');

    // 10 MiB used 19 to 10 hours ago (old1 first), then 10 MiB used now: 20 MiB, past the 16 MiB bound.
    await inVolume(
      spec.image,
      'set -e; mkdir -p /cache/0a /cache/0b; for i in 1 2 3 4 5 6 7 8 9 10; do head -c 1048576 /dev/zero > /cache/0a/old$i; touch -d "$((20 - i)) hours ago" /cache/0a/old$i; head -c 1048576 /dev/zero > /cache/0b/new$i; done',
    );
    // A worker trims a volume at most every few minutes: a new runtime stands for the next build's worker.
    const next = new DockerRuntime(docker);
    await next.prepareCache(spec);
    // The trim runs beside the build, not before it.
    await next.trimsDone();
    const left = (await inVolume(spec.image, 'cd /cache && find . -type f | sort; du -sk . | cut -f1')).trim().split('\n');
    const kib = Number(left.pop());
    // Down to 80 % of the bound (12.8 MiB): 8 of the old files went, every recent one stayed.
    expect(kib).toBeLessThanOrEqual(16 * 1024 * 0.8);
    expect(left.filter((f) => f.includes('new'))).toHaveLength(10);
    expect(left.filter((f) => f.includes('old'))).toEqual(['./0a/old10', './0a/old9']);

    // Within the bound: nothing goes.
    const third = new DockerRuntime(docker);
    await third.prepareCache(spec);
    await third.trimsDone();
    const again = (await inVolume(spec.image, 'cd /cache && find . -path ./.plugforge-seed -prune -o -type f -print | wc -l')).trim();
    expect(again).toBe('12');
  }, 120_000);
});

describe("a tenant's module cache bound", () => {
  it('empties a module cache past its bound before the download, and not while a build uses it', async () => {
    const record = trimRecord('trim2', true);
    const spec = planDependencies(record, loadConfig({ PLUGFORGE_MODULE_CACHE_MAX_MB: '1' }), {
      workerId: 'trim',
      instanceId: `trim-${tenant}`,
    }).container;
    modules = spec.moduleCache!.volume;
    expect(modules).toBe(`plugforge-gomod-${tenant}`);
    await new DockerRuntime(docker).prepareCache(spec);
    // 2 MiB of modules, read-only as Go leaves them: past the 1 MiB bound.
    const fill =
      'set -e; mkdir -p example.com/m@v1.0.0 cache/download; head -c 2097152 /dev/zero > example.com/m@v1.0.0/big.go; chmod -R a-w example.com';
    await inVolume(spec.image, `cd /cache && ${fill}`, modules);
    // A build of the tenant reading it: left as it is.
    const reader = await docker.createContainer({
      Image: spec.image,
      Cmd: ['sleep', '60'],
      NetworkDisabled: true,
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: modules, Target: '/go/pkg/mod', ReadOnly: true }] },
    });
    await reader.start();
    try {
      await new DockerRuntime(docker).prepareCache(spec);
      expect((await inVolume(spec.image, 'find /cache -type f | wc -l', modules)).trim()).toBe('1');
    } finally {
      await reader.remove({ force: true });
    }
    // Nobody using it: the next dependency phase finds it empty.
    await new DockerRuntime(docker).prepareCache(spec);
    expect((await inVolume(spec.image, 'find /cache -mindepth 1 | wc -l', modules)).trim()).toBe('0');
  }, 120_000);
});
