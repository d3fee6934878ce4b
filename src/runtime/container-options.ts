import type { ContainerCreateOptions, MountSettings, VolumeCreateOptions } from 'dockerode';
import { BUILD_UID, CONTAINER_PATHS, LABELS, type ContainerSpec } from './build-spec.js';

/** Volume option: do not copy the image's mount point (owner, files) into an empty volume. */
const NO_COPY = { NoCopy: true } as MountSettings['VolumeOptions'];

/**
 * The sized volumes of one container: its /work and /tmp, each a tmpfs of the spec's size
 * made by the engine's local volume driver. A write past the size fails (ENOSPC) inside the
 * container; nothing reaches the worker's disk. A holder container keeps them mounted from
 * before the source is copied in until the artifact is copied out, or the loading probe
 * has run in it (docs/decisions.md, "Every writable path has a size").
 */
export interface ContainerDisks {
  work: string;
  tmp: string;
}

/** The container path of each disk, for messages. */
export const DISK_PATHS = { work: CONTAINER_PATHS.work, tmp: '/tmp' } as const;

export function diskVolumeOptions(spec: ContainerSpec, name: string, which: keyof ContainerDisks): VolumeCreateOptions {
  const size = which === 'work' ? spec.limits.workBytes : spec.limits.tmpfsBytes;
  // /work is root's (the tar put into it makes the build user's directories); /tmp anyone's.
  const mode = which === 'work' ? 'mode=0755,nosuid,nodev' : 'mode=1777,noexec,nosuid,nodev';
  return {
    Name: name,
    Driver: 'local',
    DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: `size=${size},${mode}` },
    Labels: { ...spec.labels, [LABELS.role]: 'disk' },
  };
}

/**
 * The holder: a container that only sleeps, with the disks mounted, so the engine keeps
 * their tmpfs mounted while the real container is created, copied into, started, ended and
 * copied out of. With a `sandbox` (a plugin's loading probe, docs/decisions.md "The loading
 * probe runs in the holder"), it is that spec's container (its hardening, limits, user,
 * environment and runtime, its disks writable at /work and /tmp, no cache of any kind) with
 * sleep for its command, and the probe is run in it by exec once the build's container is
 * gone. Without one it mounts the disks read-only and is as hardened as a build and smaller.
 */
export function holderCreateOptions(spec: ContainerSpec, disks: ContainerDisks, sandbox?: ContainerSpec): ContainerCreateOptions {
  if (sandbox) {
    const opts = toCreateOptions(sandbox, disks);
    return {
      ...opts,
      Cmd: ['sleep', 'infinity'],
      Labels: { ...sandbox.labels, [LABELS.role]: 'disk' },
      AttachStdout: false,
      AttachStderr: false,
    };
  }
  return {
    Image: spec.image,
    Cmd: ['sleep', 'infinity'],
    User: `${BUILD_UID}:${BUILD_UID}`,
    Labels: { ...spec.labels, [LABELS.role]: 'disk' },
    NetworkDisabled: true,
    StopSignal: 'SIGKILL',
    HostConfig: {
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      ReadonlyRootfs: true,
      Memory: 32 * 1024 * 1024,
      MemorySwap: 32 * 1024 * 1024,
      NanoCpus: 1e8,
      PidsLimit: 8,
      Mounts: [
        { Type: 'volume', Source: disks.work, Target: DISK_PATHS.work, ReadOnly: true, VolumeOptions: NO_COPY },
        { Type: 'volume', Source: disks.tmp, Target: DISK_PATHS.tmp, ReadOnly: true, VolumeOptions: NO_COPY },
      ],
      LogConfig: { Type: 'none', Config: {} },
      RestartPolicy: { Name: 'no' },
    },
  };
}

/**
 * The one place a ContainerSpec becomes Docker's container settings. Every security default
 * lives here (and is pinned by test/container-options.test.ts): no network, no capabilities, no
 * privilege escalation, a non-root user, a read-only root filesystem, pid/memory/CPU
 * limits, and a size on every writable path (/work and /tmp: ContainerDisks; the cache
 * volume: trimmed to its bound before a build). Only the spec's checked fields reach it; nothing here comes from a request.
 * A network (bridge) is given only to a dependency phase whose proxy is an http(s) URL;
 * the module cache is mounted read-only into builds. The runtime is the engine's default
 * unless the configuration names one (PLUGFORGE_CONTAINER_RUNTIME).
 */
export function toCreateOptions(spec: ContainerSpec, disks: ContainerDisks): ContainerCreateOptions {
  return {
    Image: spec.image,
    Cmd: spec.cmd,
    Env: spec.env,
    WorkingDir: spec.workdir,
    User: spec.user,
    Labels: spec.labels,
    NetworkDisabled: spec.network === 'none',
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    StopSignal: 'SIGKILL',
    HostConfig: {
      NetworkMode: spec.network,
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges:true'],
      Privileged: false,
      ReadonlyRootfs: true,
      Memory: spec.limits.memoryBytes,
      // Equal to Memory: no swap on top of the memory limit.
      MemorySwap: spec.limits.memoryBytes,
      NanoCpus: spec.limits.nanoCpus,
      PidsLimit: spec.limits.pidsLimit,
      Ulimits: [{ Name: 'nofile', Soft: 4096, Hard: 4096 }],
      IpcMode: 'private',
      Mounts: specMounts(spec, disks),
      LogConfig: { Type: 'none', Config: {} },
      AutoRemove: false,
      RestartPolicy: { Name: 'no' },
      Init: false,
      // A sandboxed runtime (gVisor's runsc) when the operator configured one.
      ...(spec.runtime ? { Runtime: spec.runtime } : {}),
    },
  };
}

/** A spec's mounts: its own disks, the build cache, the module cache, the proxy's folder. */
function specMounts(spec: ContainerSpec, disks: ContainerDisks): MountSettings[] {
  // /work and /tmp are sized tmpfs volumes of this container alone (ContainerDisks):
  // source, output and temp files. putArchive can write into a volume of a read-only container.
  return [
    { Type: 'volume', Source: disks.work, Target: CONTAINER_PATHS.work, ReadOnly: false, VolumeOptions: NO_COPY },
    { Type: 'volume', Source: disks.tmp, Target: DISK_PATHS.tmp, ReadOnly: false, VolumeOptions: NO_COPY },
    // NoCopy: an empty volume must not take the image's owner of the mount point (root):
    // it was handed to the build user when plugforge made it.
    ...(spec.cacheVolume
      ? [{ Type: 'volume' as const, Source: spec.cacheVolume, Target: CONTAINER_PATHS.cache, ReadOnly: false, VolumeOptions: NO_COPY }]
      : []),
    ...(spec.moduleCache
      ? [
          {
            Type: 'volume' as const,
            Source: spec.moduleCache.volume,
            Target: CONTAINER_PATHS.modCache,
            ReadOnly: spec.moduleCache.readOnly,
            VolumeOptions: NO_COPY,
          },
        ]
      : []),
    ...(spec.proxyDir ? [{ Type: 'bind' as const, Source: spec.proxyDir, Target: CONTAINER_PATHS.proxy, ReadOnly: true }] : []),
  ];
}

/**
 * A short trusted command of ours (the cache volume's preparation or trim) with one volume at
 * /cache: no network, its own small limits, and the configured runtime like every other
 * container of a build (PLUGFORGE_CONTAINER_RUNTIME): it runs in the build's image on a
 * volume that build code writes.
 */
export function cacheCommandOptions(
  spec: ContainerSpec,
  volume: string,
  cmd: string[],
  how: { user: string; capAdd: string[]; memoryBytes: number; pids: number },
): ContainerCreateOptions {
  return {
    Image: spec.image,
    Cmd: cmd,
    User: how.user,
    WorkingDir: CONTAINER_PATHS.cache,
    NetworkDisabled: true,
    // The job's labels, role cache: a worker that dies while this runs leaves it to the orphan sweep.
    Labels: { ...spec.labels, [LABELS.role]: 'cache' },
    HostConfig: {
      NetworkMode: 'none',
      CapDrop: ['ALL'],
      CapAdd: how.capAdd,
      SecurityOpt: ['no-new-privileges:true'],
      ReadonlyRootfs: true,
      Memory: how.memoryBytes,
      MemorySwap: how.memoryBytes,
      PidsLimit: how.pids,
      NanoCpus: 1e9,
      // NoCopy: an empty volume mounted without it takes the image's owner of /cache (root) again.
      Mounts: [{ Type: 'volume', Source: volume, Target: CONTAINER_PATHS.cache, ReadOnly: false, VolumeOptions: NO_COPY }],
      ...(spec.runtime ? { Runtime: spec.runtime } : {}),
    },
  };
}
