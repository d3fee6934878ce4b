import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { WorkerRegistry } from '../src/queue/worker-registry.js';
import { runCommandInImage } from '../src/runtime/run-command.js';
import { TARGET_IDS, TARGETS } from '../src/contract/targets.js';
import { PREBUILT_PROBE } from '../src/verify/load-probe.js';
import { NO_PLUGIN } from '../src/verify/probe-loaders.js';
import { LoadCapabilities, type ImageCommandRunner } from '../src/worker/load-capabilities.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { FakeRuntime, fakeElf } from '../src/runtime/fake-runtime.js';
import { ApiClient } from './support/http.js';
import { GOTIFY_PLUGIN, tarOf } from './support/source.js';
import { eventually, EventuallyTimeout } from './support/eventually.js';
import { fakeImages } from './support/fixtures.js';

/**
 * Which loader runs the loading probe, per target, on this worker: found out by running the
 * image's prebuilt probe, on whatever kernel this is. These tests hold on a kernel that runs
 * 32-bit x86 programs and on one that cannot (no IA32 emulation): they ask the kernel first.
 */
describe('load capabilities on the real engine', () => {
  let docker: Docker;
  let go = '';
  let run: ImageCommandRunner;
  /** Whether this kernel runs the 386 image's probe through the i686 loader, asked directly. */
  let native386 = false;
  let nativeOutput = '';

  beforeAll(async () => {
    docker = await requireDocker();
    go = await requireImages(docker);
    run = (image, cmd) => runCommandInImage(docker, image, cmd);
    const r = await run(`plugforge/build:${go}-linux-386`, [
      '/usr/i686-linux-gnu/lib/ld-linux.so.2',
      '--library-path',
      '/usr/i686-linux-gnu/lib',
      PREBUILT_PROBE,
      NO_PLUGIN,
    ]);
    native386 = r.stdout.includes('"open_failed"');
    nativeOutput = `${r.stderr}${r.stdout}`;
  });

  const ref = (target: (typeof TARGET_IDS)[number]) => ({ image: `plugforge/build:${go}-${target}`, target });

  it('qemu-i386 runs the 386 probe on any x86-64 kernel (PLUGFORGE_PROBE_386=qemu)', async () => {
    const c = await new LoadCapabilities(run, 'qemu').of(ref('linux-386'));
    expect(c).toMatchObject({ loader: { how: 'qemu-i386-static' }, checked: true });
  });

  it('native 386 works exactly where the kernel runs 32-bit x86, and says why not elsewhere', async () => {
    const c = await new LoadCapabilities(run, 'native').of(ref('linux-386'));
    if (native386) expect(c).toMatchObject({ loader: { how: 'natively (i686 loader)' }, checked: true });
    else {
      expect(nativeOutput.toLowerCase()).toContain('exec format error');
      expect('unavailable' in c && c.unavailable).toMatch(
        /cannot run linux-386 programs: natively \(i686 loader\): exit status \d+ .*exec format error/i,
      );
    }
  });

  it('auto takes the native loader where it runs, else qemu; the other targets are found as before', async () => {
    const caps = new LoadCapabilities(run, 'auto');
    expect(await caps.of(ref('linux-386'))).toMatchObject({
      loader: { how: native386 ? 'natively (i686 loader)' : 'qemu-i386-static' },
      checked: true,
    });
    expect(await caps.of(ref('linux-amd64'))).toMatchObject({ loader: { how: 'natively' }, checked: true });
    expect(await caps.of(ref('linux-arm64'))).toMatchObject({ loader: { how: 'qemu-aarch64-static' }, checked: true });
    expect(await caps.of(ref('linux-arm-7'))).toMatchObject({ loader: { how: 'qemu-arm-static' }, checked: true });
    expect(caps.summary(TARGET_IDS.map(ref))[ref('linux-386').image]).toEqual({
      how: native386 ? 'natively (i686 loader)' : 'qemu-i386-static',
    });
  });
});

describe('a build on a real worker with PLUGFORGE_PROBE_386=qemu', () => {
  let redis: Redis;
  let service: RunningService;
  let api: ApiClient;

  beforeAll(async () => {
    redis = await requireRedis();
    await requireImages(await requireDocker());
    service = await startService('serve', await testConfig({ PLUGFORGE_PROBE_386: 'qemu' }));
    api = new ApiClient(`http://127.0.0.1:${service.port}`);
  });

  afterAll(async () => {
    await service?.stop();
    redis?.disconnect();
  });

  it('loads the 386 artifact under qemu-i386, and /readyz and /v1/toolchains say how each target is loaded', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-386&host=gotify');
    expect(res.status).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status, JSON.stringify(doc.targets)).toBe('succeeded');
    expect(doc.targets['linux-386'].verify).toMatchObject({
      status: 'passed',
      method: 'probe',
      probe: { status: 'passed', how: 'qemu-i386-static' },
    });
    expect(doc.targets['linux-386'].verify.message).toContain(
      'symbols GetGotifyPluginInfo, NewGotifyPluginInstance exported (dynamic symbol table); loaded by plugin.Open qemu-i386-static',
    );
    // The worker checks its images one at a time in the background: wait until all four are known.
    const ready = await api.waitUntilReady((body) => TARGET_IDS.every((t) => body.load?.[t]));
    expect(ready.load['linux-386']).toBe('qemu-i386-static');
    expect(ready.load).toMatchObject({ 'linux-amd64': 'natively', 'linux-arm64': 'qemu-aarch64-static', 'linux-arm-7': 'qemu-arm-static' });
    const tc = (await api.get('/v1/toolchains')).body;
    const g = tc.toolchains.find((t: any) => t.go === doc.go);
    expect(g.load['linux-386']).toBe('qemu-i386-static');
  }, 300_000);
});

/** A fake runtime whose builds write an ELF file of their target, and the images a fake worker reports. */
const elfRuntime = () => new FakeRuntime((spec) => ({ artifact: fakeElf(TARGETS[spec.target].elfClass, TARGETS[spec.target].elfMachine) }));
const images = fakeImages();

/**
 * A worker that cannot load a target (scripted: its 386 loader fails as on a kernel without
 * IA32 emulation, whatever this machine's kernel does), with a fake runtime. Its artifacts
 * are bare ELF headers, so the builds use the generic profile: a gotify profile's symbols
 * are looked for in the artifact's dynamic symbol table, which they lack.
 */
describe('a target this worker cannot load (fake runtime, real Redis)', () => {
  let redis: Redis;
  let service: RunningService;
  let api: ApiClient;
  const runtime = elfRuntime();
  const noIa32: ImageCommandRunner = async (image, cmd) => {
    if (cmd[0] === 'test') return { exitCode: 0, stdout: '', stderr: '' };
    if (image.endsWith('linux-386'))
      return { exitCode: 126, stdout: '', stderr: 'exec /usr/i686-linux-gnu/lib/ld-linux.so.2: exec format error' };
    return { exitCode: 3, stdout: '{"result":"open_failed","message":"realpath failed"}\n', stderr: '' };
  };

  beforeAll(async () => {
    redis = await requireRedis();
    service = await startService('serve', await testConfig({ PLUGFORGE_PROBE_386: 'native' }), {
      runtime,
      images,
      loads: new LoadCapabilities(noIa32, 'native'),
    });
    api = new ApiClient(`http://127.0.0.1:${service.port}`);
  });

  afterAll(async () => {
    await service?.stop();
    redis?.disconnect();
  });

  it('is not failed: it succeeds with verify "skipped" and the worker\'s reason; the others are loaded', async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-amd64,linux-386');
    const doc = await api.waitFor(res.body.id, undefined, 60_000);
    expect(doc.status).toBe('succeeded');
    expect(doc.targets['linux-386'].verify).toMatchObject({ status: 'skipped', method: 'elf', probe: { status: 'skipped' } });
    expect(doc.targets['linux-386'].verify.probe.reason).toContain('exec format error');
    expect(doc.targets['linux-386'].artifact.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(doc.targets['linux-amd64'].verify).toMatchObject({ status: 'passed', method: 'probe' });
    // No probe container was made for the target that could not be loaded: one container (the build), against two for amd64.
    const creates = (t: string) => runtime.events.filter((e) => e === `create ${res.body.id}-${t}`).length;
    expect(creates('linux-386')).toBe(1);
    expect(creates('linux-amd64')).toBe(2);
    const logs = await api.get(`/v1/builds/${res.body.id}/logs?target=linux-386`);
    expect(logs.text).toContain('the loading probe was skipped');
  });

  it("with verify=loaded and no worker that can: fails probe_unavailable, naming the worker's limitation, without building", async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-386&verify=loaded');
    const doc = await api.waitFor(res.body.id, undefined, 60_000);
    expect(doc.status).toBe('failed');
    expect(doc.targets['linux-386'].error.code).toBe('probe_unavailable');
    expect(doc.targets['linux-386'].error.message).toContain('exec format error');
    expect(runtime.events.filter((e) => e.includes(res.body.id))).toEqual([]);
  });
});

/** A check's result reaches /readyz as soon as it is known, not at the worker's next heartbeat (every 5 s). */
describe('a capability just learnt (fake runtime, real Redis)', () => {
  let redis: Redis;
  let service: RunningService;
  let api: ApiClient;
  const runtime = elfRuntime();
  let queueName = '';
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const gated: ImageCommandRunner = async (_image, cmd) => {
    if (cmd[0] === 'test') return { exitCode: 0, stdout: '', stderr: '' };
    await gate;
    return { exitCode: 3, stdout: '{"result":"open_failed","message":"realpath failed"}\n', stderr: '' };
  };

  beforeAll(async () => {
    redis = await requireRedis();
    const config = await testConfig({ PLUGFORGE_PROBE_386: 'qemu' });
    queueName = config.queueName;
    service = await startService('serve', config, { runtime, images, loads: new LoadCapabilities(gated, 'qemu') });
    api = new ApiClient(`http://127.0.0.1:${service.port}`);
  });

  afterAll(async () => {
    release();
    await service?.stop();
    redis?.disconnect();
  });

  it("is in the worker's report within 1.5 s of the check's end, between two heartbeats", async () => {
    const res = await api.submit(await tarOf(GOTIFY_PLUGIN, { gzip: true }), 'targets=linux-386');
    expect(res.status).toBe(202);
    // Release the check just after a heartbeat, so that the next one is about 5 s away.
    const first = (await api.waitUntilReady((b) => b.status === 'ready')).load?.['linux-386'];
    expect(first).toBeUndefined();
    const registry = WorkerRegistry.forQueue(redis, queueName);
    const reportedAt = async () => (await registry.live())[0]?.reportedAt;
    const before = await reportedAt();
    // Without a heartbeat in 10 s the check is released all the same, as before.
    await eventually(async () => (await reportedAt()) !== before, { intervalMs: 50, message: 'a heartbeat' }).catch((err: unknown) => {
      if (!(err instanceof EventuallyTimeout)) throw err;
    });
    release();
    const ready = await api.waitUntilReady((b) => Boolean(b.load?.['linux-386']), 1_500);
    expect(ready.load['linux-386']).toBe('qemu-i386-static');
    expect((await api.waitFor(res.body.id, undefined, 60_000)).targets['linux-386'].verify.probe.how).toBe('qemu-i386-static');
  });
});

describe('check containers of a worker that died', () => {
  it('are swept by the next worker of the installation, as build containers are', async () => {
    const redis = await requireRedis();
    const docker = await requireDocker();
    const go = await requireImages(docker);
    const config = await testConfig();
    const instance = await WorkerRegistry.forQueue(redis, config.queueName).instanceId();
    // What a worker killed during a capability check leaves: a check container with its labels.
    const left = await docker.createContainer({
      Image: `plugforge/build:${go}-linux-amd64`,
      Cmd: ['sleep', '600'],
      NetworkDisabled: true,
      Labels: { 'org.plugforge.role': 'check', 'org.plugforge.worker': 'a-worker-that-died', 'org.plugforge.instance': instance },
      HostConfig: { NetworkMode: 'none' },
    });
    await left.start();
    const service = await startService('serve', config);
    try {
      await eventually(async () => (await docker.listContainers({ all: true, filters: { id: [left.id] } })).length === 0, {
        timeoutMs: 20_000,
        intervalMs: 250,
        message: 'the check container swept',
      });
    } finally {
      await service.stop();
      await left.remove({ force: true }).catch(() => undefined);
      redis.disconnect();
    }
  }, 60_000);
});
