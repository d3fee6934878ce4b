import { describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { loadConfig } from '../src/config.js';
import { diskVolumeOptions, holderCreateOptions, toCreateOptions } from '../src/runtime/container-options.js';
import { DockerRuntime } from '../src/runtime/docker-runtime.js';
import type Docker from 'dockerode';
import { plan, planDependencies, planVerify, PLUGIN_SCRIPT } from '../src/worker/plan.js';
import { loaderCandidates } from '../src/verify/probe-loaders.js';
import { sampleRecord } from './support/fixtures.js';

const record = sampleRecord({
  id: 'abc123',
  host: 'generic',
  targetIds: ['linux-arm-7'],
  source: { sha256: 'a'.repeat(64), size: 1024, module: 'example.com/hello', vendored: false, requirements: false },
});

/** The disk volumes DockerRuntime.create makes for a container. */
const DISKS = { work: 'plugforge-work-x', tmp: 'plugforge-tmp-x' };

const config = loadConfig({ PLUGFORGE_BUILD_MEMORY_MB: '1024', PLUGFORGE_BUILD_CPUS: '1.5', PLUGFORGE_BUILD_PIDS: '256' });

describe('toCreateOptions (every security default of a build container)', () => {
  const spec = plan(record, 'linux-arm-7', config, { workerId: 'w1', instanceId: 'i1' }).container;
  const opts = toCreateOptions(spec, DISKS);
  const host = opts.HostConfig!;

  it('gives the container no network at all', () => {
    expect(opts.NetworkDisabled).toBe(true);
    expect(host.NetworkMode).toBe('none');
  });

  it('drops every capability and forbids gaining privileges', () => {
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd).toEqual([]);
    expect(host.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(host.Privileged).toBe(false);
  });

  it('runs as the unprivileged build user on a read-only root', () => {
    expect(opts.User).toBe('65532:65532');
    expect(host.ReadonlyRootfs).toBe(true);
  });

  it('limits memory (no extra swap), CPU and pids as configured', () => {
    expect(host.Memory).toBe(1024 * 1024 * 1024);
    expect(host.MemorySwap).toBe(host.Memory);
    expect(host.NanoCpus).toBe(1_500_000_000);
    expect(host.PidsLimit).toBe(256);
    expect(host.Ulimits).toEqual([{ Name: 'nofile', Soft: 4096, Hard: 4096 }]);
  });

  it('mounts only the per-container disks (/work, /tmp) and the build cache, never the Docker socket or a host path', () => {
    expect(host.Mounts).toEqual([
      { Type: 'volume', Source: 'plugforge-work-x', Target: '/work', ReadOnly: false, VolumeOptions: { NoCopy: true } },
      { Type: 'volume', Source: 'plugforge-tmp-x', Target: '/tmp', ReadOnly: false, VolumeOptions: { NoCopy: true } },
      {
        Type: 'volume',
        Source: 'plugforge-gocache-public-1.22.12-linux-arm-7',
        Target: '/cache',
        ReadOnly: false,
        VolumeOptions: { NoCopy: true },
      },
    ]);
    expect(host.Binds).toBeUndefined();
    expect(host.Devices).toBeUndefined();
    expect(host.Tmpfs).toBeUndefined();
  });

  it('sizes /work and /tmp: tmpfs volumes of the configured sizes (PLUGFORGE_WORK_DISK_MB, PLUGFORGE_TMP_DISK_MB), /tmp not executable', () => {
    const sized = plan(record, 'linux-arm-7', loadConfig({ PLUGFORGE_WORK_DISK_MB: '300', PLUGFORGE_TMP_DISK_MB: '20' }), {
      workerId: 'w1',
      instanceId: 'i1',
    }).container;
    expect(diskVolumeOptions(sized, 'plugforge-work-x', 'work')).toEqual({
      Name: 'plugforge-work-x',
      Driver: 'local',
      DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: `size=${300 * 1048576},mode=0755,nosuid,nodev` },
      Labels: { ...sized.labels, 'org.plugforge.role': 'disk' },
    });
    expect(diskVolumeOptions(sized, 'plugforge-tmp-x', 'tmp').DriverOpts).toEqual({
      type: 'tmpfs',
      device: 'tmpfs',
      o: `size=${20 * 1048576},mode=1777,noexec,nosuid,nodev`,
    });
    // The defaults: 1 GiB and 256 MiB.
    expect(spec.limits.workBytes).toBe(1024 * 1048576);
    expect(spec.limits.tmpfsBytes).toBe(256 * 1048576);
  });

  it('holds the disks in a container that only sleeps, hardened like a build and smaller, mounting them read-only', () => {
    const holder = holderCreateOptions(spec, DISKS);
    expect(holder.Cmd).toEqual(['sleep', 'infinity']);
    expect(holder.User).toBe('65532:65532');
    expect(holder.Labels).toEqual({ ...spec.labels, 'org.plugforge.role': 'disk' });
    expect(holder.HostConfig).toMatchObject({
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      ReadonlyRootfs: true,
      Memory: 32 * 1048576,
      PidsLimit: 8,
    });
    expect(holder.HostConfig!.Mounts!.map((m) => [m.Source, m.ReadOnly])).toEqual([
      ['plugforge-work-x', true],
      ['plugforge-tmp-x', true],
    ]);
  });

  it('keeps no log on the engine, restarts never, and is not auto-removed (the worker removes it)', () => {
    expect(host.LogConfig).toEqual({ Type: 'none', Config: {} });
    expect(host.RestartPolicy).toEqual({ Name: 'no' });
    expect(host.AutoRemove).toBe(false);
    expect(host.IpcMode).toBe('private');
    expect(opts.StopSignal).toBe('SIGKILL');
  });

  it('runs our fixed script with the go build arguments after it (no request data in the script), in the source directory', () => {
    expect(opts.Cmd).toEqual([
      'sh',
      '-c',
      PLUGIN_SCRIPT,
      'build',
      'go',
      'build',
      '-buildvcs=false',
      '-buildmode=plugin',
      '-o',
      '/work/out/hello-linux-arm-7.so',
      '.',
    ]);
    expect(opts.Entrypoint).toBeUndefined();
    expect(opts.WorkingDir).toBe('/work/src');
    expect(opts.Tty).toBe(false);
    expect(opts.OpenStdin).toBe(false);
  });

  it('labels the container with its step, build, target, job, worker and installation', () => {
    expect(opts.Labels).toEqual({
      'org.plugforge.role': 'build',
      'org.plugforge.step': 'build',
      'org.plugforge.build': 'abc123',
      'org.plugforge.target': 'linux-arm-7',
      'org.plugforge.job': 'abc123-linux-arm-7',
      'org.plugforge.worker': 'w1',
      'org.plugforge.instance': 'i1',
    });
  });

  it('sets exactly the allowed Go environment', () => {
    expect(opts.Env).toEqual([
      'GOOS=linux',
      'GOARCH=arm',
      'GOARM=7',
      'CC=arm-linux-gnueabihf-gcc',
      'CGO_ENABLED=1',
      'GOTOOLCHAIN=local',
      'GOPROXY=off',
      'GOCACHE=/cache',
      'HOME=/work/home',
      'TMPDIR=/work/tmp',
      'PLUGFORGE_PROBE_FLAGS=',
      'PLUGFORGE_PROBE_PREBUILT=/usr/local/lib/plugforge/probe/probe',
    ]);
  });

  it('sets no HostConfig field beyond the pinned ones', () => {
    expect(Object.keys(host).sort()).toEqual(
      [
        'AutoRemove',
        'CapAdd',
        'CapDrop',
        'Init',
        'IpcMode',
        'LogConfig',
        'Memory',
        'MemorySwap',
        'Mounts',
        'NanoCpus',
        'NetworkMode',
        'PidsLimit',
        'Privileged',
        'ReadonlyRootfs',
        'RestartPolicy',
        'SecurityOpt',
        'Ulimits',
      ].sort(),
    );
  });
});

describe('toCreateOptions with modules', () => {
  const withModules: BuildRecord = { ...record, source: { ...record.source, requirements: true } };
  const who = { workerId: 'w1', instanceId: 'i1' };

  it('mounts the module cache read-only into a build, which stays offline', () => {
    const opts = toCreateOptions(plan(withModules, 'linux-arm-7', config, who).container, DISKS);
    expect(opts.HostConfig!.NetworkMode).toBe('none');
    expect(opts.HostConfig!.Mounts).toContainEqual({
      Type: 'volume',
      Source: 'plugforge-gomod-public',
      Target: '/go/pkg/mod',
      ReadOnly: true,
      VolumeOptions: { NoCopy: true },
    });
    expect(opts.Env).toEqual(expect.arrayContaining(['GOPROXY=off', 'GOFLAGS=-mod=readonly', 'GOMODCACHE=/go/pkg/mod']));
  });

  it("mounts each tenant's own module cache, and bounds it where it is written", () => {
    const of = (tenant: string) => ({ ...withModules, tenant });
    expect(plan(of('alice'), 'linux-amd64', config, who).container.moduleCache).toEqual({
      volume: 'plugforge-gomod-alice',
      readOnly: true,
    });
    expect(planDependencies(of('bob'), config, who).container.moduleCache).toEqual({
      volume: 'plugforge-gomod-bob',
      readOnly: false,
      maxBytes: 2048 * 1024 * 1024,
    });
    const prefixed = loadConfig({ PLUGFORGE_MODULE_CACHE_VOLUME: 'plugforge-gomod-site2', PLUGFORGE_MODULE_CACHE_MAX_MB: '100' });
    expect(planDependencies(of('bob'), prefixed, who).container.moduleCache).toEqual({
      volume: 'plugforge-gomod-site2-bob',
      readOnly: false,
      maxBytes: 100 * 1024 * 1024,
    });
    expect(() => loadConfig({ PLUGFORGE_MODULE_CACHE_VOLUME: 'gomod' })).toThrow(/must start with plugforge-gomod/);
  });

  it('does not mount the module cache into a vendored build', () => {
    const opts = toCreateOptions(
      plan({ ...withModules, source: { ...withModules.source, vendored: true } }, 'linux-arm-7', config, who).container,
      DISKS,
    );
    expect(opts.HostConfig!.Mounts!.map((m) => m.Target)).toEqual(['/work', '/tmp', '/cache']);
  });

  it('gives the dependency phase a network only for an http(s) proxy, with the same hardening', () => {
    const opts = toCreateOptions(planDependencies(withModules, config, who).container, DISKS);
    const host = opts.HostConfig!;
    expect(host.NetworkMode).toBe('bridge');
    expect(opts.NetworkDisabled).toBe(false);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.ReadonlyRootfs).toBe(true);
    expect(opts.User).toBe('65532:65532');
    expect(host.Mounts).toContainEqual({
      Type: 'volume',
      Source: 'plugforge-gomod-public',
      Target: '/go/pkg/mod',
      ReadOnly: false,
      VolumeOptions: { NoCopy: true },
    });
    expect(opts.Env).toContain('GOPROXY=https://proxy.golang.org');
  });

  it('mounts a file:// proxy read-only and keeps the dependency phase offline', () => {
    const fileConfig = loadConfig({ PLUGFORGE_GOPROXY: 'file:///srv/goproxy', PLUGFORGE_GOSUMDB: 'off' });
    const opts = toCreateOptions(planDependencies(withModules, fileConfig, who).container, DISKS);
    expect(opts.HostConfig!.NetworkMode).toBe('none');
    expect(opts.NetworkDisabled).toBe(true);
    expect(opts.HostConfig!.Mounts).toContainEqual({ Type: 'bind', Source: '/srv/goproxy', Target: '/proxy', ReadOnly: true });
    expect(opts.Env).toEqual(expect.arrayContaining(['GOPROXY=file:///proxy', 'GOSUMDB=off']));
  });

  it('takes proxy settings from configuration only, and refuses a proxy list', () => {
    expect(() => loadConfig({ PLUGFORGE_GOPROXY: 'https://a.example,direct' })).toThrow(/PLUGFORGE_GOPROXY/);
  });
});

describe("the loading probe: run by exec in the holder of its build's disks, made of its spec", () => {
  const build = plan(record, 'linux-arm-7', config, { workerId: 'w1', instanceId: 'i1' });
  const verify = planVerify(build, ['GetGotifyPluginInfo'], loaderCandidates('linux-arm-7')[0]!);

  it('runs the probe with no shell', () => {
    expect(verify.container.cmd).toEqual([
      'qemu-arm-static',
      '-L',
      '/usr/arm-linux-gnueabihf',
      '/work/tmp/probe',
      '/work/out/hello-linux-arm-7.so',
      'GetGotifyPluginInfo',
    ]);
  });

  it("makes the holder a build's sandbox that sleeps: the same hardening and limits, the disks writable, no cache at all (the probe runs untrusted init code)", () => {
    const holder = holderCreateOptions(build.container, DISKS, verify.container);
    const probe = toCreateOptions(verify.container, DISKS);
    expect(holder.Cmd).toEqual(['sleep', 'infinity']);
    expect(holder.Labels).toEqual({ ...verify.container.labels, 'org.plugforge.role': 'disk' });
    expect(holder.HostConfig).toEqual(probe.HostConfig);
    expect({ ...holder, Cmd: probe.Cmd, Labels: probe.Labels, AttachStdout: true, AttachStderr: true }).toEqual(probe);
    expect(holder.HostConfig!.Mounts).toEqual([
      { Type: 'volume', Source: 'plugforge-work-x', Target: '/work', ReadOnly: false, VolumeOptions: { NoCopy: true } },
      { Type: 'volume', Source: 'plugforge-tmp-x', Target: '/tmp', ReadOnly: false, VolumeOptions: { NoCopy: true } },
    ]);
    expect(holder.HostConfig!.NetworkMode).toBe('none');
    expect(holder.HostConfig!.CapDrop).toEqual(['ALL']);
    expect(holder.HostConfig!.ReadonlyRootfs).toBe(true);
    expect(holder.HostConfig!.PidsLimit).toBe(256);
    expect(holder.HostConfig!.Memory).toBe(1024 * 1048576);
    expect(holder.User).toBe('65532:65532');
  });
});

describe('toCreateOptions with a sandboxed runtime', () => {
  const who = { workerId: 'w1', instanceId: 'i1' };
  const withModules: BuildRecord = { ...record, source: { ...record.source, requirements: true } };

  it('leaves the engine its default runtime unless one is configured', () => {
    expect(toCreateOptions(plan(record, 'linux-arm-7', config, who).container, DISKS).HostConfig!.Runtime).toBeUndefined();
  });

  it('runs builds, the dependency phase and the probe under PLUGFORGE_CONTAINER_RUNTIME, the hardening unchanged', () => {
    const sandboxed = loadConfig({ PLUGFORGE_CONTAINER_RUNTIME: 'runsc' });
    const build = plan(record, 'linux-arm-7', sandboxed, who);
    for (const step of [
      build,
      planDependencies(withModules, sandboxed, who),
      planVerify(build, ['GetGotifyPluginInfo'], { argv: [], how: 'natively' }),
    ]) {
      const spec = step.container;
      const opts = toCreateOptions(spec, DISKS);
      expect(opts.HostConfig!.Runtime, step.kind).toBe('runsc');
      expect(opts.HostConfig!.CapDrop).toEqual(['ALL']);
      expect(opts.HostConfig!.SecurityOpt).toEqual(['no-new-privileges:true']);
      expect(opts.HostConfig!.ReadonlyRootfs).toBe(true);
    }
    expect(Object.keys(toCreateOptions(build.container, DISKS).HostConfig!).sort()).toEqual(
      [
        'AutoRemove',
        'CapAdd',
        'CapDrop',
        'Init',
        'IpcMode',
        'LogConfig',
        'Memory',
        'MemorySwap',
        'Mounts',
        'NanoCpus',
        'NetworkMode',
        'PidsLimit',
        'Privileged',
        'ReadonlyRootfs',
        'RestartPolicy',
        'Runtime',
        'SecurityOpt',
        'Ulimits',
      ].sort(),
    );
  });

  it('takes the runtime from configuration only, as a plain runtime name', () => {
    expect(() => loadConfig({ PLUGFORGE_CONTAINER_RUNTIME: '/usr/bin/runsc' })).toThrow(/PLUGFORGE_CONTAINER_RUNTIME/);
    expect(() => loadConfig({ PLUGFORGE_CONTAINER_RUNTIME: 'runsc --network=host' })).toThrow(/PLUGFORGE_CONTAINER_RUNTIME/);
  });
});

describe('the cache containers (prepare and trim) with a sandboxed runtime', () => {
  it('run under PLUGFORGE_CONTAINER_RUNTIME too, as hardened as before', async () => {
    const created: Docker.ContainerCreateOptions[] = [];
    const docker = {
      getVolume: () => ({ inspect: async () => Promise.reject(Object.assign(new Error('no such volume'), { statusCode: 404 })) }),
      createVolume: async () => ({}),
      createContainer: async (opts: Docker.ContainerCreateOptions) => {
        created.push(opts);
        return {
          id: `c${created.length}`,
          start: async () => undefined,
          wait: async () => ({ StatusCode: 0 }),
          remove: async () => undefined,
        };
      },
    } as unknown as Docker;
    const runtime = new DockerRuntime(docker);
    const spec = plan(record, 'linux-arm-7', loadConfig({ PLUGFORGE_CONTAINER_RUNTIME: 'runsc' }), {
      workerId: 'w1',
      instanceId: 'i1',
    }).container;
    await runtime.prepareCache(spec);
    await runtime.trimsDone();
    expect(created.map((c) => c.Labels?.['org.plugforge.role'])).toEqual(['cache', 'cache']);
    for (const c of created) {
      expect(c.HostConfig!.Runtime).toBe('runsc');
      expect(c.HostConfig!.NetworkMode).toBe('none');
      expect(c.HostConfig!.CapDrop).toEqual(['ALL']);
      expect(c.HostConfig!.ReadonlyRootfs).toBe(true);
    }
    // Without one configured, the engine's default, as for builds.
    created.length = 0;
    await new DockerRuntime(docker).prepareCache(plan(record, 'linux-arm-7', config, { workerId: 'w1', instanceId: 'i1' }).container);
    expect(created[0]!.HostConfig!.Runtime).toBeUndefined();
  });
});
