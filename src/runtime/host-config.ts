import type { ContainerCreateOptions } from 'dockerode';
import { CONTAINER_PATHS, type BuildSpec } from '../worker/build-spec.js';

/**
 * The one place a BuildSpec becomes Docker's container settings. Every security default
 * lives here (and is pinned by test/host-config.test.ts): no network, no capabilities, no
 * privilege escalation, a non-root user, a read-only root filesystem, pid/memory/CPU
 * limits. Only the spec's checked fields reach it; nothing here comes from a request.
 */
export function toCreateOptions(spec: BuildSpec): ContainerCreateOptions {
  return {
    Image: spec.image,
    Cmd: spec.cmd,
    Env: spec.env,
    WorkingDir: spec.workdir,
    User: spec.user,
    Labels: spec.labels,
    NetworkDisabled: true,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    StopSignal: 'SIGKILL',
    HostConfig: {
      NetworkMode: 'none',
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
        { Type: 'volume', Source: spec.cacheVolume, Target: CONTAINER_PATHS.cache, ReadOnly: false },
      ],
      Tmpfs: { '/tmp': `rw,noexec,nosuid,nodev,size=${spec.limits.tmpfsBytes}` },
      LogConfig: { Type: 'none', Config: {} },
      AutoRemove: false,
      RestartPolicy: { Name: 'no' },
      Init: false,
    },
  };
}
