import type { Readable, Writable } from 'node:stream';
import type Docker from 'dockerode';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { BUILD_UID, CONTAINER_PATHS, type BuildSpec } from '../worker/build-spec.js';

/** On cache volumes plugforge made and handed to the build user (the value: that uid). */
const CACHE_LABEL = 'org.plugforge.cache-owner';
const BUILD_UID_TEXT = String(BUILD_UID);
/** The cache-preparing container's own limits: it runs one chown. */
const PREPARE_LIMITS = { memoryBytes: 64 * 1024 * 1024, pids: 16, timeoutMs: 60_000 };
import type { BuildRuntime, ContainerHandle, ExitStatus } from './build-runtime.js';
import { isDockerUnreachable, isNotFound } from './docker-client.js';
import { toCreateOptions } from './host-config.js';
import { withDeadline } from '../deadline.js';

/** Turns engine failures into PlugforgeErrors that say whether a retry can help. */
function engineError(err: unknown, what: string): PlugforgeError {
  if (err instanceof PlugforgeError) return err;
  if (isDockerUnreachable(err)) {
    return new PlugforgeError('docker_unavailable', `The Docker engine is unreachable (${what}): ${(err as Error).message}. The target will be retried.`, { status: 503, retryable: true, cause: err });
  }
  const status = (err as { statusCode?: number }).statusCode;
  // 5xx from the engine is its own trouble (a daemon restarting, a full disk): retry.
  return new PlugforgeError('docker_error', `Docker failed to ${what}: ${(err as Error).message}`, { status: 500, retryable: status === undefined || status >= 500, cause: err });
}

export class DockerRuntime implements BuildRuntime {
  constructor(private readonly docker: Docker) {}

  async create(spec: BuildSpec): Promise<ContainerHandle> {
    try {
      const container = await this.docker.createContainer(toCreateOptions(spec));
      return { id: container.id, spec };
    } catch (err) {
      if (isNotFound(err)) {
        throw new PlugforgeError('image_missing', `The builder image ${spec.image} is not on this worker's Docker engine. Build it with: plugforge images build --go ${spec.image.split(':')[1]?.split('-')[0] ?? ''}`, { status: 500, retryable: false });
      }
      throw engineError(err, 'create the build container');
    }
  }

  async putArchive(handle: ContainerHandle, dir: string, tar: Readable): Promise<void> {
    try {
      await this.docker.getContainer(handle.id).putArchive(tar, { path: dir });
    } catch (err) {
      throw engineError(err, 'copy the source into the build container');
    }
  }

  async start(handle: ContainerHandle, stdout: Writable, stderr: Writable = stdout): Promise<void> {
    const container = this.docker.getContainer(handle.id);
    try {
      // Attach before start so not a byte of output is missed.
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      container.modem.demuxStream(stream, stdout, stderr);
      stream.on('end', () => {
        stdout.end();
        if (stderr !== stdout) stderr.end();
      });
      await container.start();
    } catch (err) {
      throw engineError(err, 'start the build container');
    }
  }

  async wait(handle: ContainerHandle, signal: AbortSignal): Promise<ExitStatus> {
    const container = this.docker.getContainer(handle.id);
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = () => {
        container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
        reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const res = (await Promise.race([container.wait(), aborted])) as { StatusCode: number };
      const info = await container.inspect();
      return { exitCode: res.StatusCode, oomKilled: Boolean(info.State?.OOMKilled) };
    } catch (err) {
      if (signal.aborted) throw err;
      throw engineError(err, 'wait for the build container');
    }
  }

  async getArchive(handle: ContainerHandle, path: string): Promise<Readable> {
    try {
      return (await this.docker.getContainer(handle.id).getArchive({ path })) as unknown as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new PlugforgeError('artifact_missing', `go build exited 0 but wrote no ${path.split('/').pop()}.`, { status: 500 });
      throw engineError(err, 'copy the artifact out of the build container');
    }
  }

  async destroy(handle: Pick<ContainerHandle, 'id'>): Promise<void> {
    const container = this.docker.getContainer(handle.id);
    try {
      await container.remove({ force: true, v: true });
    } catch (err) {
      // Gone already, or being removed by someone else: both are what we want.
      if (isNotFound(err) || (err as { statusCode?: number }).statusCode === 409) return;
      throw engineError(err, 'remove the build container');
    }
  }

  async list(labels: Record<string, string>): Promise<{ id: string; labels: Record<string, string> }[]> {
    try {
      const found = await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }) });
      return found.map((c) => ({ id: c.Id, labels: c.Labels ?? {} }));
    } catch (err) {
      throw engineError(err, 'list containers');
    }
  }

  /**
   * A new named volume belongs to root; the build runs as BUILD_UID. The volume is made
   * with a label, and a short trusted container (root with only CAP_CHOWN, no network)
   * hands it over. A volume without the label (made by someone else, or removed and made
   * again implicitly) is handed over again. Checked on every build, since a volume can be
   * removed at any time (docker volume prune).
   */
  /** Makes the cache volumes of a spec the build user's: a short root container (chown only, no network, its own limits and deadline). */
  async prepareCache(spec: BuildSpec): Promise<void> {
    if (spec.cacheMount === 'rw') await this.prepareVolume(spec, spec.cacheVolume);
    // The module cache is written only by the dependency phase; builds mount it read-only.
    if (spec.moduleCache && !spec.moduleCache.readOnly) await this.prepareVolume(spec, spec.moduleCache.volume);
  }

  private async prepareVolume(spec: BuildSpec, volume: string): Promise<void> {
    try {
      const existing = await this.docker
        .getVolume(volume)
        .inspect()
        .catch((err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        });
      if (existing?.Labels?.[CACHE_LABEL] === BUILD_UID_TEXT) return;
      if (!existing) await this.docker.createVolume({ Name: volume, Labels: { [CACHE_LABEL]: BUILD_UID_TEXT } });
      const container = await this.docker.createContainer({
        Image: spec.image,
        Cmd: ['chown', spec.user, CONTAINER_PATHS.cache],
        User: '0:0',
        NetworkDisabled: true,
        // The job's labels: a worker that dies while this runs leaves it to the orphan sweep.
        Labels: spec.labels,
        HostConfig: {
          NetworkMode: 'none',
          CapDrop: ['ALL'],
          CapAdd: ['CHOWN'],
          SecurityOpt: ['no-new-privileges:true'],
          ReadonlyRootfs: true,
          Memory: PREPARE_LIMITS.memoryBytes,
          MemorySwap: PREPARE_LIMITS.memoryBytes,
          PidsLimit: PREPARE_LIMITS.pids,
          NanoCpus: 1e9,
          Mounts: [{ Type: 'volume', Source: volume, Target: CONTAINER_PATHS.cache, ReadOnly: false }],
        },
      });
      try {
        await container.start();
        // A chown of an empty volume takes a moment; past the deadline the container is killed (finally).
        const res = (await withDeadline(container.wait() as Promise<{ StatusCode: number }>, PREPARE_LIMITS.timeoutMs, { StatusCode: -1 }));
        if (res.StatusCode !== 0) throw new PlugforgeError('cache_prepare_failed', `could not prepare the cache volume ${volume}`, { status: 500, retryable: true });
      } finally {
        await container.remove({ force: true }).catch(() => undefined);
      }
    } catch (err) {
      if (isNotFound(err)) {
        throw new PlugforgeError('image_missing', `The builder image ${spec.image} is not on this worker's Docker engine.`, { status: 500, retryable: false });
      }
      throw engineError(err, 'prepare the build cache');
    }
  }
}
