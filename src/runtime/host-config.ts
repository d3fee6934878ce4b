import type { ContainerCreateOptions, MountSettings } from 'dockerode';

/** Volume option: do not copy the image's mount point (owner, files) into an empty volume. */
const NO_COPY = { NoCopy: true } as MountSettings['VolumeOptions'];
import { CONTAINER_PATHS, type BuildSpec } from '../worker/build-spec.js';

/**
 * The one place a BuildSpec becomes Docker's container settings. Every security default
 * lives here (and is pinned by test/host-config.test.ts): no network, no capabilities, no
 * privilege escalation, a non-root user, a read-only root filesystem, pid/memory/CPU
 * limits. Only the spec's checked fields reach it; nothing here comes from a request.
 * A network (bridge) is given only to a dependency phase whose proxy is an http(s) URL;
 * the module cache is mounted read-only into builds. The runtime is the engine's default
 * unless the configuration names one (PLUGFORGE_CONTAINER_RUNTIME).
 */
export function toCreateOptions(spec: BuildSpec): ContainerCreateOptions {
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
      // /work is an anonymous volume per container (removed with it): source, output and
      // temp files. putArchive can write into a volume of a read-only container.
      Mounts: [
        { Type: 'volume', Source: '', Target: CONTAINER_PATHS.work, ReadOnly: false },
        // NoCopy: an empty volume must not take the image's owner of the mount point (root):
        // it was handed to the build user when plugforge made it.
        ...(spec.cacheMount === 'rw' ? [{ Type: 'volume' as const, Source: spec.cacheVolume, Target: CONTAINER_PATHS.cache, ReadOnly: false, VolumeOptions: NO_COPY }] : []),
        ...(spec.moduleCache
          ? [{ Type: 'volume' as const, Source: spec.moduleCache.volume, Target: CONTAINER_PATHS.modCache, ReadOnly: spec.moduleCache.readOnly, VolumeOptions: NO_COPY }]
          : []),
        ...(spec.proxyDir ? [{ Type: 'bind' as const, Source: spec.proxyDir, Target: CONTAINER_PATHS.proxy, ReadOnly: true }] : []),
      ],
      Tmpfs: { '/tmp': `rw,noexec,nosuid,nodev,size=${spec.limits.tmpfsBytes}` },
      LogConfig: { Type: 'none', Config: {} },
      AutoRemove: false,
      RestartPolicy: { Name: 'no' },
      Init: false,
      // A sandboxed runtime (gVisor's runsc) when the operator configured one.
      ...(spec.runtime ? { Runtime: spec.runtime } : {}),
    },
  };
}
