import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import type { Config } from '../src/config.js';
import { DockerRuntime } from '../src/runtime/docker-runtime.js';
import { FsBlobStore } from '../src/store/fs-blob-store.js';
import { plan } from '../src/worker/plan.js';
import { runTargetBuild, type TargetOutcome } from '../src/worker/target-build.js';
import { containersLeft, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import {
  CGO_FLAG_ESCAPES,
  DISK_FILLER_BUILD,
  DISK_FILLER_PLUGIN,
  EMBED_ESCAPE,
  filesUnder,
  FILESYSTEM_PROBE,
  FORK_BOMB_PLUGIN,
  FORK_BOMB_PROBE,
  hugeArtifact,
  logFlood,
  MEMORY_HOG,
  MEMORY_HOG_PLUGIN,
  NETWORK_IMPORT,
  NETWORK_PROBE,
  NEVER_ENDS,
  SLEEPER_PLUGIN,
} from './support/hostile.js';
import { ApiClient } from './support/http.js';
import { rawTar } from './support/raw-tar.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { eventually, EventuallyTimeout } from './support/eventually.js';

/**
 * Hostile plugins on the real service (Redis, a worker on Docker, the Go 1.22 images) with
 * small limits: each ends as a failed target with its own code, its container removed,
 * while a normal build running beside it succeeds. Plugin code that would run when a plugin
 * is loaded (its init) runs in the loading probe, and also, for finer checks, as a program
 * under the build container's settings.
 */
const LIMITS = { timeoutS: 20, memoryMb: 512, pids: 128, artifactMb: 8, logKb: 64, workMb: 128, tmpMb: 32 };

let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let config: Config;
let go = '';
/** Every build this file submits: none may leave a container behind. */
const builds: string[] = [];

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  config = await testConfig({
    PLUGFORGE_BUILD_TIMEOUT_SECONDS: String(LIMITS.timeoutS),
    PLUGFORGE_BUILD_MEMORY_MB: String(LIMITS.memoryMb),
    PLUGFORGE_BUILD_PIDS: String(LIMITS.pids),
    PLUGFORGE_MAX_ARTIFACT_MB: String(LIMITS.artifactMb),
    PLUGFORGE_MAX_LOG_KB: String(LIMITS.logKb),
    PLUGFORGE_WORK_DISK_MB: String(LIMITS.workMb),
    PLUGFORGE_TMP_DISK_MB: String(LIMITS.tmpMb),
    PLUGFORGE_ATTEMPTS: '1',
  });
  service = await startService('serve', config);
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
});

afterAll(async () => {
  await service?.stop();
  redis?.disconnect();
});

/** Containers with the label: builds, probes and the holders of their disks. */
async function containersWith(label: string) {
  return docker.listContainers({ all: true, filters: JSON.stringify({ label: [label] }) });
}

/** The build (or probe) container itself, not the holder of its disks. */
async function buildContainerOf(id: string) {
  // The build step's container, not the loading probe's (made while the build runs, on its disks).
  const [c] = await docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`org.plugforge.build=${id}`, 'org.plugforge.role=build', 'org.plugforge.step=build'] }),
  });
  return c;
}

/** Polls a build's linux-amd64 log until it contains `text`. */
async function waitForLog(id: string, text: string, timeoutMs = 120_000): Promise<void> {
  await eventually(async () => (await api.get(`/v1/builds/${id}/logs?target=linux-amd64`)).text.includes(text), {
    timeoutMs,
    intervalMs: 200,
    message: `the log of ${id} saying "${text}"`,
  });
}

/** Free bytes of the filesystem that holds the engine's containers and volumes. */
async function engineDiskFree(): Promise<number> {
  const root = ((await docker.info()) as { DockerRootDir: string }).DockerRootDir;
  const s = await statfs(root);
  return s.bavail * s.bsize;
}

/**
 * Runs `attack` while sampling the engine's free disk every 100 ms; resolves to the most
 * the free space ever fell below where it was before.
 */
async function diskDropDuring(attack: () => Promise<void>): Promise<number> {
  const before = await engineDiskFree();
  let lowest = before;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      lowest = Math.min(lowest, await engineDiskFree());
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await attack();
  } finally {
    sampling = false;
    await sampler;
  }
  return before - Math.min(lowest, await engineDiskFree());
}

async function submit(files: Record<string, string | Buffer>, query: string): Promise<string> {
  const res = await api.submit(await tarOf(files, { gzip: true }), query);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  builds.push(res.body.id);
  return res.body.id as string;
}

/**
 * Submits the hostile plugin and, at the same moment, a normal one; both run at once on
 * the worker. The hostile target must fail with `code` and a message matching `message`,
 * the normal build must succeed, and neither may leave a container.
 */
async function attack(files: Record<string, string | Buffer>, code: string, message: RegExp, whileRunning?: (id: string) => Promise<void>) {
  const [hostile, normal] = await Promise.all([
    submit(files, 'targets=linux-amd64&name=hostile'),
    submit(GOTIFY_PLUGIN, `targets=linux-amd64&name=beside${builds.length}`),
  ]);
  if (whileRunning) await whileRunning(hostile);
  const [doc, beside] = await Promise.all([api.waitFor(hostile, undefined, 120_000), api.waitFor(normal, undefined, 120_000)]);
  expect(doc.status).toBe('failed');
  const target = doc.targets['linux-amd64'];
  expect(target.error.code, JSON.stringify(target.error)).toBe(code);
  expect(target.error.message).toMatch(message);
  expect(target.artifact).toBeUndefined();
  expect(beside.status, JSON.stringify(beside.targets)).toBe('succeeded');
  expect(await containersLeft(docker, [`org.plugforge.build=${hostile}`])).toEqual([]);
  expect(await containersLeft(docker, [`org.plugforge.build=${normal}`])).toEqual([]);
  return doc;
}

describe('hostile builds through the service', () => {
  it("a fork bomb in a plugin's init, run by the loading probe, is held at the pids limit: pids_limit", async () => {
    const [hostile, normal] = await Promise.all([
      submit(FORK_BOMB_PLUGIN, 'targets=linux-amd64&name=forkbomb'),
      submit(GOTIFY_PLUGIN, `targets=linux-amd64&host=gotify&name=beside${builds.length}`),
    ]);
    const [doc, beside] = await Promise.all([api.waitFor(hostile, undefined, 120_000), api.waitFor(normal, undefined, 120_000)]);
    expect(doc.status).toBe('failed');
    const target = doc.targets['linux-amd64'];
    expect(target.error.code, JSON.stringify(target)).toBe('pids_limit');
    expect(target.verify.status).toBe('failed');
    expect(target.verify.message).toContain(`limit of ${LIMITS.pids} processes and threads`);
    expect(beside.status).toBe('succeeded');
    expect(await containersLeft(docker, [`org.plugforge.build=${hostile}`])).toEqual([]);
  });

  it('a build that allocates without end is killed at the memory limit: out_of_memory', async () => {
    await attack(MEMORY_HOG, 'out_of_memory', new RegExp(`${LIMITS.memoryMb} MiB memory limit`));
  });

  it('a build that never finishes is killed at the deadline: timeout; meanwhile its container has no network, no capabilities and a read-only root', async () => {
    let inspected: Docker.ContainerInspectInfo | undefined;
    const doc = await attack(NEVER_ENDS, 'timeout', new RegExp(`did not finish within ${LIMITS.timeoutS} s`), async (id) => {
      const running = async () => {
        const c = await buildContainerOf(id);
        const info = c
          ? await docker
              .getContainer(c.Id)
              .inspect()
              .catch(() => undefined)
          : undefined;
        return info?.State.Running ? info : undefined;
      };
      inspected = await eventually(running, { timeoutMs: 60_000, message: 'the build container running' });
    });
    expect(inspected, 'the container was seen running').toBeDefined();
    const info = inspected!;
    expect(info.HostConfig.NetworkMode).toBe('none');
    expect((info.Config as { NetworkDisabled?: boolean }).NetworkDisabled).toBe(true);
    expect(Object.keys(info.NetworkSettings.Networks ?? {}).filter((n) => n !== 'none')).toEqual([]);
    expect(info.Config.User).toBe('65532:65532');
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.CapAdd ?? []).toEqual([]);
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges:true');
    expect(info.HostConfig.PidsLimit).toBe(LIMITS.pids);
    expect(info.HostConfig.Memory).toBe(LIMITS.memoryMb * 1024 * 1024);
    expect(info.HostConfig.MemorySwap).toBe(LIMITS.memoryMb * 1024 * 1024);
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    expect(info.Mounts.every((m) => m.Type === 'volume' || m.Type === 'tmpfs')).toBe(true);
    expect(info.Mounts.map((m) => m.Destination).sort()).toEqual(['/cache', '/tmp', '/work']);
    const duration = doc.targets['linux-amd64'].durationMs as number;
    expect(duration).toBeGreaterThanOrEqual(LIMITS.timeoutS * 1000);
    expect(duration).toBeLessThan(LIMITS.timeoutS * 1000 + 20_000);
  });

  it(`a build that writes without end (a 2 GiB object from cgo) stops at its /work of ${LIMITS.workMb} MiB: disk_limit, the engine's disk untouched`, async () => {
    const dropped = await diskDropDuring(async () => {
      await attack(DISK_FILLER_BUILD, 'disk_limit', new RegExp(`filled its /work \\(${LIMITS.workMb} MiB, PLUGFORGE_WORK_DISK_MB\\)`));
    });
    expect(dropped).toBeLessThan(LIMITS.workMb * 1048576);
  });

  it(`a plugin whose init writes without end, run by the loading probe, stops at its disks: disk_limit, the engine's disk untouched`, async () => {
    const dropped = await diskDropDuring(async () => {
      const [hostile, normal] = await Promise.all([
        submit(DISK_FILLER_PLUGIN, 'targets=linux-amd64&name=diskfiller'),
        submit(GOTIFY_PLUGIN, `targets=linux-amd64&host=gotify&name=beside${builds.length}`),
      ]);
      const [doc, beside] = await Promise.all([api.waitFor(hostile, undefined, 120_000), api.waitFor(normal, undefined, 120_000)]);
      const target = doc.targets['linux-amd64'];
      expect(target.error?.code, JSON.stringify(target)).toBe('disk_limit');
      expect(target.verify.status).toBe('failed');
      expect(target.error.message).toMatch(/loading the plugin filled its \/work \(128 MiB, PLUGFORGE_WORK_DISK_MB\)/);
      expect(beside.status).toBe('succeeded');
      expect(await containersLeft(docker, [`org.plugforge.build=${hostile}`])).toEqual([]);
    });
    expect(dropped).toBeLessThan(LIMITS.workMb * 1048576);
  });

  it('a plugin whose init allocates without end, run by the loading probe, is killed at the memory limit: out_of_memory', async () => {
    const doc = await api.waitFor(await submit(MEMORY_HOG_PLUGIN, 'targets=linux-amd64&name=memhogplugin'), undefined, 120_000);
    const target = doc.targets['linux-amd64'];
    expect(target.error?.code, JSON.stringify(target)).toBe('out_of_memory');
    expect(target.verify.status).toBe('failed');
    expect(target.error.message).toMatch(/loading the plugin ran out of memory \(its init functions\)/);
    // The artifact was stored before it was loaded, and stays downloadable.
    expect(target.artifact.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await containersLeft(docker, [`org.plugforge.build=${doc.id}`])).toEqual([]);
  });

  it('a plugin whose init never returns: a cancel while the probe runs ends it at once, and the deadline ends it otherwise: timeout, the artifact kept', async () => {
    const canceled = await submit(SLEEPER_PLUGIN, 'targets=linux-amd64&name=sleeper');
    await waitForLog(canceled, 'verify: loading');
    expect((await api.request('DELETE', `/v1/builds/${canceled}`)).status).toBe(202);
    expect((await api.waitFor(canceled, undefined, 30_000)).status).toBe('canceled');
    expect(await containersLeft(docker, [`org.plugforge.build=${canceled}`])).toEqual([]);

    const doc = await api.waitFor(await submit(SLEEPER_PLUGIN, 'targets=linux-amd64&name=sleeper'), undefined, 120_000);
    const target = doc.targets['linux-amd64'];
    expect(target.error?.code, JSON.stringify(target)).toBe('timeout');
    expect(target.error.message).toContain(
      `loading the plugin did not finish within ${LIMITS.timeoutS} s (its init functions); the probe was killed`,
    );
    expect(target.verify.status).toBe('failed');
    expect(target.artifact.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await containersLeft(docker, [`org.plugforge.build=${doc.id}`])).toEqual([]);
  });

  it('a build that writes a huge artifact is refused: artifact_too_large, nothing stored', async () => {
    const doc = await attack(
      hugeArtifact(12),
      'artifact_too_large',
      new RegExp(`over the ${LIMITS.artifactMb * 1024 * 1024}-byte artifact limit`),
    );
    expect((await api.bytes(`/v1/builds/${doc.id}/artifacts/linux-amd64`)).status).toBe(409);
  });

  it('a build that wants the network cannot even try: compile_failed, lookups disabled', async () => {
    await attack(
      NETWORK_IMPORT,
      'compile_failed',
      /evil\.example\.com\/exfil.*(no required module provides package|GOPROXY=off|module lookup disabled)|(no required module provides package|module lookup disabled).*evil\.example\.com\/exfil/s,
    );
  });

  it('a build that embeds a file outside its directory is refused by go: compile_failed', async () => {
    await attack(EMBED_ESCAPE, 'compile_failed', /\.\.\/\.\.\/\.\.\/etc\/passwd: invalid pattern syntax/);
  });

  it.each(CGO_FLAG_ESCAPES.map((files, i) => [i, files] as const))(
    'cgo flags that would run code or write elsewhere at build time are refused by go (%i): compile_failed',
    async (_i, files) => {
      await attack(files, 'compile_failed', /invalid flag in #cgo (C|LD)FLAGS/);
    },
  );

  it('a build that floods its output is cut at the log cap', async () => {
    const doc = await attack(logFlood(1000), 'compile_failed', /undeclared/);
    const logs = await api.get(`/v1/builds/${doc.id}/logs?target=linux-amd64`);
    expect(logs.text).toContain(`output truncated after ${LIMITS.logKb * 1024} bytes`);
    expect(logs.text.length).toBeLessThan(LIMITS.logKb * 1024 + 8 * 1024);
  });
});

describe('plugin code running in a build container (the stand-in for a loading probe)', () => {
  let store: FsBlobStore;
  const probeInstance = `probe-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    store = new FsBlobStore(await mkdtemp(path.join(os.tmpdir(), 'plugforge-probe-')));
    await store.init();
  });

  afterAll(async () => {
    expect(await containersLeft(docker, [`org.plugforge.instance=${probeInstance}`])).toEqual([]);
  });

  /** Runs `go run .` (or `cmd`) on the files through the worker's target path, with the service's limits. */
  async function runInContainer(
    files: Record<string, string>,
    options: { cmd?: string[]; pids?: number; timeoutS?: number; during?: (buildId: string) => Promise<void> } = {},
  ): Promise<{ outcome: TargetOutcome; log: string; id: string }> {
    const blob = await store.put(Readable.from([await tarOf(files)]));
    const id = `probe${randomBytes(5).toString('hex')}`;
    const record: BuildRecord = {
      id,
      tenant: 'public',
      createdAt: new Date().toISOString(),
      go,
      goRequested: go,
      name: 'probe',
      mode: 'exe',
      host: 'generic',
      targetIds: ['linux-amd64'],
      source: { sha256: blob.sha256, size: blob.size, module: 'example.com/probe', vendored: false, requirements: false },
    };
    const limits = {
      ...config,
      build: {
        ...config.build,
        pidsLimit: options.pids ?? config.build.pidsLimit,
        timeoutMs: (options.timeoutS ?? config.build.timeoutMs / 1000) * 1000,
      },
    };
    const step = plan(record, 'linux-amd64', limits, { workerId: 'probe', instanceId: probeInstance });
    let log = '';
    const running = runTargetBuild(
      { runtime: new DockerRuntime(docker), store, appendLog: async (text) => void (log += text) },
      [{ ...step, container: { ...step.container, cmd: options.cmd ?? ['go', 'run', '.'] } }],
      { sourceSha256: blob.sha256, mode: 'exe' },
      new AbortController().signal,
    );
    const during = options.during?.(id);
    const outcome = await running;
    await during;
    expect(await containersLeft(docker, [`org.plugforge.build=${id}`])).toEqual([]);
    return { outcome, log, id };
  }

  it('a fork bomb in init is held at the pids limit: pids_limit, and the host unharmed', async () => {
    const hostProcesses = async () => (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).length;
    const before = await hostProcesses();
    let peakInContainer = 0;
    let peakOnHost = before;
    let limitSeen: number | undefined;
    const { outcome, log } = await runInContainer(FORK_BOMB_PROBE, {
      // The bomb is the container's first process (under go run, the go command itself may
      // be the one refused a thread, and the container would end before it is measured).
      cmd: ['sh', '-c', 'go build -o /work/tmp/bomb . && exec /work/tmp/bomb'],
      // The go build compiles the runtime for an executable first (the image's seed is for
      // plugins): 10-13 s alone, past 20 s on a loaded machine. The limit under test is pids.
      timeoutS: 60,
      // Sampled every 50 ms while the container runs, until it is gone (or 60 s passed).
      during: async (id) => {
        const sampledToItsEnd = async () => {
          const c = await buildContainerOf(id);
          if (!c && peakInContainer > 0) return true;
          if (c?.State === 'running') {
            const stats = (await docker
              .getContainer(c.Id)
              .stats({ stream: false, 'one-shot': true } as { stream: false })
              .catch(() => undefined)) as { pids_stats?: { current?: number; limit?: number } } | undefined;
            peakInContainer = Math.max(peakInContainer, stats?.pids_stats?.current ?? 0);
            limitSeen = stats?.pids_stats?.limit ?? limitSeen;
            peakOnHost = Math.max(peakOnHost, await hostProcesses());
          }
          return false;
        };
        await eventually(sampledToItsEnd, { timeoutMs: 60_000, intervalMs: 50 }).catch((err: unknown) => {
          if (!(err instanceof EventuallyTimeout)) throw err;
        });
      },
    });
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code, outcome.error?.message).toBe('pids_limit');
    expect(outcome.error?.message).toMatch(new RegExp(`limit of ${LIMITS.pids} processes and threads`));
    expect(log).toMatch(/fork refused: .*resource temporarily unavailable|failed to create new OS thread/);
    // The bomb filled its container up to the limit, and not one past it.
    expect(peakInContainer).toBeGreaterThanOrEqual(LIMITS.pids - 8);
    expect(peakInContainer).toBeLessThanOrEqual(LIMITS.pids);
    // The limit in force, as the engine reads it from the container's cgroup (pids.max) while the bomb ran.
    expect(limitSeen, 'the pids limit the engine reported while the bomb ran').toBe(LIMITS.pids);
    // The host's process table grew by no more than the container may hold (plus other work on the machine).
    expect(peakOnHost - before).toBeLessThan(LIMITS.pids + 100);
  });

  it('a legitimate build under too small a pids limit says so: pids_limit, not compile_failed', async () => {
    const { outcome } = await runInContainer(
      {
        'go.mod': 'module example.com/legit\n\ngo 1.22\n',
        'main.go':
          'package main\n\nimport (\n\t"encoding/json"\n\t"fmt"\n\t"net/http"\n)\n\nfunc main() { fmt.Println(http.StatusOK, json.Valid(nil)) }\n',
      },
      { cmd: ['go', 'build', '-buildvcs=false', '-o', '/work/out/probe-linux-amd64', '.'], pids: 8 },
    );
    expect(outcome.error?.code, outcome.error?.message).toBe('pids_limit');
  });

  it('has no network: only a loopback interface, every dial and lookup refused, no Docker socket', async () => {
    const { outcome, log } = await runInContainer(NETWORK_PROBE);
    expect(outcome.error?.code).toBe('compile_failed');
    const lines = log.split('\n');
    expect(lines.filter((l) => l.startsWith('interface '))).toEqual(['interface lo']);
    expect(lines.filter((l) => l.startsWith('dial '))).toHaveLength(4);
    for (const l of lines.filter((x) => x.startsWith('dial '))) expect(l).toMatch(/refused: .*network is unreachable/);
    expect(log).toMatch(/dns: refused/);
    expect(log).toContain('docker socket: absent');
    expect(log).not.toMatch(/CONNECTED|RESOLVED|PRESENT/);
  });

  it('cannot write outside its directories: read-only root, root-owned /work, noexec /tmp; runs as 65532 without capabilities', async () => {
    const { outcome, log } = await runInContainer(FILESYSTEM_PROBE);
    expect(outcome.error?.code).toBe('compile_failed');
    for (const p of ['/planted', '/etc/planted', '/usr/local/go/bin/planted'])
      expect(log).toMatch(new RegExp(`write ${p}: refused: .*read-only file system`));
    expect(log).toMatch(/write \/work\/planted: refused: .*permission denied/);
    // Its own directories are writable, as a build needs them; /tmp cannot run what is put there.
    for (const p of ['/work/src/planted', '/work/out/planted', '/tmp/planted.sh']) expect(log).toContain(`write ${p}: WRITTEN`);
    expect(log).toMatch(/exec \/tmp\/planted\.sh: refused: permission denied/);
    expect(log).toContain('owner /work: 0');
    expect(log).toContain('owner /work/src: 65532');
    expect(log).toContain('uid: 65532 gid: 65532');
    expect(log).toContain('CapEff: 0000000000000000');
    expect(log).toContain('CapBnd: 0000000000000000');
    expect(log).toContain('NoNewPrivs: 1');
    // The engine's default seccomp profile: plugforge never asks for seccomp=unconfined.
    expect(log).toContain('Seccomp: 2');
  });
});

describe('after the hostile builds', () => {
  it('refuses a hostile upload and keeps nothing of it', async () => {
    const before = await filesUnder(path.join(config.dataDir, 'blobs'));
    const res = await api.submit(
      gzipSync(
        rawTar([
          { name: 'go.mod', typeflag: '0', data: Buffer.from('module x\n') },
          { name: 'etc', typeflag: '2', linkname: '/etc' },
        ]),
      ),
    );
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('archive_symlink');
    expect(await filesUnder(path.join(config.dataDir, 'blobs'))).toEqual(before);
  });

  it('a normal build succeeds, no container of this suite is left, and the store holds only accepted sources and artifacts', async () => {
    const id = await submit(GOTIFY_PLUGIN, 'targets=linux-amd64,linux-arm64&name=after');
    const doc = await api.waitFor(id);
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');

    for (const b of builds) expect(await containersLeft(docker, [`org.plugforge.build=${b}`]), b).toEqual([]);
    const instance = await redis.get(`pf:${config.queueName}:instance`);
    const ours = (await containersWith('org.plugforge.role=build')).filter(
      (c) => c.Labels['org.plugforge.instance'] === instance && builds.includes(c.Labels['org.plugforge.build'] ?? ''),
    );
    expect(ours).toEqual([]);

    const expected = new Set<string>();
    for (const b of builds) {
      const d = (await api.get(`/v1/builds/${b}`)).body;
      expected.add(d.source.sha256);
      for (const t of Object.values(d.targets) as { artifact?: { sha256: string } }[]) if (t.artifact) expected.add(t.artifact.sha256);
    }
    const stored = await filesUnder(path.join(config.dataDir, 'blobs'));
    expect(stored.filter((f) => f.startsWith('tmp'))).toEqual([]);
    expect(new Set(stored.map((f) => path.basename(f)))).toEqual(expected);
  });
});
