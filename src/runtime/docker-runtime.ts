import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type Docker from 'dockerode';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { BUILD_UID, LABELS, type ContainerSpec } from './build-spec.js';
import type { BuildRuntime, ContainerHandle, DiskName, ExitStatus } from './build-runtime.js';
import { isDockerUnreachable, isNotFound } from './docker-client.js';
import { cacheCommandOptions, DISK_PATHS, diskVolumeOptions, holderCreateOptions, toCreateOptions } from './container-options.js';
import { withDeadline } from '../deadline.js';
import { readProgram } from '../program-file.js';

/** On cache volumes plugforge made and handed to the build user (the value: that uid). */
const CACHE_LABEL = 'org.plugforge.cache-owner';
const BUILD_UID_TEXT = String(BUILD_UID);
/** The cache-preparing container's own limits: it runs one chown. */
const PREPARE_LIMITS = { memoryBytes: 64 * 1024 * 1024, pids: 16, timeoutMs: 60_000 };
/** A cache volume is trimmed at most this often by one worker (a trim costs a short container). */
const TRIM_EVERY_MS = 5 * 60_000;
/** How often a running container's state is looked at beside the engine's wait (exitSeen). */
const WAIT_POLL_MS = 2_000;
/** A disk with less than this left when its container ended was full. */
const FULL_MARGIN_BYTES = 1024 * 1024;
/** Where a container reads its own memory cgroup's OOM kills: cgroup v1, v2. */
const CGROUP_OOM_FILES = ['/sys/fs/cgroup/memory/memory.oom_control', '/sys/fs/cgroup/memory.events'];
/** A count of OOM kills above 0 in either file. */
const OOM_KILLS = /^oom_kill [1-9]/m;

/** Seeding writes into a cache the build user may already own: root needs to pass its permissions (a trusted command of ours, no network). */
const SEED_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER'];

/** The cache volumes' scripts, in scripts/ beside this module (each file's header says its arguments and what it prints). */
const script = (file: string) => readProgram(new URL(`./scripts/${file}`, import.meta.url));
/** Hands a volume to the build user; a build cache is also seeded with the image's standard library. */
export const PREPARE_SCRIPT = script('prepare-cache.sh');
/** Trims a build cache past its bound, least recently used files first. */
export const TRIM_SCRIPT = script('trim-build-cache.sh');
/** Empties a module cache past its bound. */
export const MODULE_TRIM_SCRIPT = script('trim-module-cache.sh');

/** Turns engine failures into PlugforgeErrors that say whether a retry can help. */
function engineError(err: unknown, what: string): PlugforgeError {
  if (err instanceof PlugforgeError) return err;
  if (isDockerUnreachable(err)) {
    const message = `The Docker engine is unreachable (${what}): ${(err as Error).message}. The target will be retried.`;
    return new PlugforgeError('docker_unavailable', message, { status: 503, retryable: true, cause: err });
  }
  const status = (err as { statusCode?: number }).statusCode;
  // 5xx from the engine is its own trouble (a daemon restarting, a full disk): retry.
  const retryable = status === undefined || status >= 500;
  return new PlugforgeError('docker_error', `Docker failed to ${what}: ${(err as Error).message}`, { status: 500, retryable, cause: err });
}

/** The BuildRuntime on a Docker engine (build-runtime.ts says the contract; openEngine, engine.ts, makes it). */
export class DockerRuntime implements BuildRuntime {
  constructor(
    private readonly docker: Docker,
    /** Told the cache volumes a container is about to use, before they are touched (CacheVolumeSweeper.used). */
    private readonly onCacheUse: (volumes: string[]) => Promise<void> = async () => undefined,
  ) {}

  private readonly trimmedAt = new Map<string, number>();
  /** Trims running beside builds, by volume (trimLater). */
  private readonly trims = new Map<string, Promise<void>>();
  /** Cache volumes this process has handed to the build user. */
  private readonly prepared = new Set<string>();

  /**
   * The container, and first its disks (/work and /tmp, sized tmpfs volumes) with the holder
   * that keeps them mounted, made of `sandbox` when one is given (runInHolder runs it there
   * later). Whatever was made is removed again when a step fails.
   */
  async create(spec: ContainerSpec, sandbox?: ContainerSpec): Promise<ContainerHandle> {
    const suffix = `${spec.jobId}-${randomBytes(4).toString('hex')}`;
    const disks: NonNullable<ContainerHandle['disks']> = { work: `plugforge-work-${suffix}`, tmp: `plugforge-tmp-${suffix}` };
    try {
      await allOrFirstError(
        (['work', 'tmp'] as const).map((which) => this.docker.createVolume(diskVolumeOptions(spec, disks[which], which))),
      );
      const holder = await this.docker.createContainer(holderCreateOptions(spec, disks, sandbox));
      disks.holder = holder.id;
      // The holder's start (a process the engine starts, the costly part) and the build
      // container's creation overlap; the build container starts only once both are done.
      const [started, created] = await Promise.allSettled([holder.start(), this.docker.createContainer(toCreateOptions(spec, disks))]);
      if (started.status === 'fulfilled' && created.status === 'fulfilled')
        return { id: created.value.id, spec, disks, ...(sandbox ? { sandbox } : {}) };
      if (created.status === 'fulfilled') await this.removeContainer(created.value.id).catch(() => undefined);
      throw started.status === 'rejected' ? started.reason : (created as PromiseRejectedResult).reason;
    } catch (err) {
      await this.removeDisks(disks).catch(() => undefined);
      if (isNotFound(err)) {
        const go = spec.image.split(':')[1]?.split('-')[0] ?? '';
        const message = `The builder image ${spec.image} is not on this worker's Docker engine. Build it with: plugforge images build --go ${go}`;
        throw new PlugforgeError('image_missing', message, { status: 500, retryable: false });
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
    const waited = new AbortController();
    try {
      const res = (await Promise.race([container.wait(), aborted, exitSeen(container, waited.signal)])) as { StatusCode: number };
      const info = await container.inspect();
      // Only a failure asks why: measuring the disks costs an exec in the holder (a process
      // started by the engine, ~0.2 s), on every target's path twice (docs/architecture.md).
      const full = res.StatusCode === 0 ? [] : await this.fullDisks(handle);
      return { exitCode: res.StatusCode, oomKilled: Boolean(info.State?.OOMKilled), full };
    } catch (err) {
      if (signal.aborted) throw err;
      throw engineError(err, 'wait for the build container');
    } finally {
      waited.abort();
    }
  }

  async getArchive(handle: ContainerHandle, path: string): Promise<Readable> {
    try {
      return (await this.docker.getContainer(handle.id).getArchive({ path })) as unknown as Readable;
    } catch (err) {
      if (isNotFound(err))
        throw new PlugforgeError('artifact_missing', `go build exited 0 but wrote no ${path.split('/').pop()}.`, { status: 500 });
      throw engineError(err, 'copy the artifact out of the build container');
    }
  }

  /**
   * Which of the container's disks are full, measured through the holder (stat -f of its
   * mounts). Best effort: none when it cannot be measured.
   */
  async fullDisks(handle: ContainerHandle): Promise<DiskName[]> {
    if (!handle.disks?.holder) return [];
    const names = ['work', 'tmp'] as const;
    const lines = (await this.execText(handle.disks.holder, ['stat', '-f', '-c', '%b %a %S', DISK_PATHS.work, DISK_PATHS.tmp]))
      .trim()
      .split('\n');
    return names.filter((_, i) => {
      const [, avail, bsize] = (lines[i] ?? '').split(' ').map(Number);
      return avail !== undefined && bsize !== undefined && Number.isFinite(avail * bsize) && avail * bsize < FULL_MARGIN_BYTES;
    });
  }

  /**
   * Runs the sandbox's command by exec in the holder it was made of. The exec shares the
   * holder's cgroups: a memory kill shows in its cgroup's oom_kill count (the holder lives
   * on, so the engine's OOMKilled, set when a container ends, never says it). An abort kills
   * the holder, and with it everything the command started.
   */
  async runInHolder(handle: ContainerHandle, stdout: Writable, stderr: Writable, signal: AbortSignal): Promise<ExitStatus> {
    const holder = handle.disks?.holder;
    if (!holder || !handle.sandbox) throw new Error('this container was made without a sandbox to run in its holder');
    const kill = () =>
      void this.docker
        .getContainer(holder)
        .kill({ signal: 'SIGKILL' })
        .catch(() => undefined);
    signal.addEventListener('abort', kill, { once: true });
    try {
      if (signal.aborted) throw signal.reason;
      const { exec, ended } = await this.exec(holder, handle.sandbox.cmd, stdout, stderr);
      await ended;
      if (signal.aborted) throw signal.reason;
      const exitCode = await execExitCode(exec);
      const oomKilled = exitCode === 137 && OOM_KILLS.test(await this.execText(holder, ['cat', ...CGROUP_OOM_FILES]));
      return { exitCode, oomKilled, full: exitCode === 0 ? [] : await this.fullDisks(handle) };
    } catch (err) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
      throw engineError(err, 'run the loading probe in its holder');
    } finally {
      signal.removeEventListener('abort', kill);
      stdout.end();
      if (stderr !== stdout) stderr.end();
    }
  }

  /** Starts `cmd` by exec in a running container, its output demultiplexed onto `stdout` and `stderr`; `ended` resolves when that output ends. */
  private async exec(
    id: string,
    cmd: string[],
    stdout: Writable,
    stderr: Writable,
  ): Promise<{ exec: Docker.Exec; ended: Promise<unknown> }> {
    const exec = await this.docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    this.docker.modem.demuxStream(stream, stdout, stderr);
    return { exec, ended: new Promise((resolve) => stream.once('end', resolve).once('close', resolve).once('error', resolve)) };
  }

  /** What a short command of ours prints by exec in a running container, within 10 s; empty when it cannot run. */
  private async execText(id: string, cmd: string[]): Promise<string> {
    try {
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      const { ended } = await this.exec(id, cmd, out, new PassThrough().resume());
      await withDeadline(ended, 10_000, undefined);
      return Buffer.concat(chunks).toString('utf8');
    } catch {
      return '';
    }
  }

  async destroy(handle: Pick<ContainerHandle, 'id' | 'disks'>): Promise<void> {
    // The container and the holder go side by side; the volumes once neither uses them.
    const holder = handle.disks?.holder;
    await allOrFirstError([this.removeContainer(handle.id), ...(holder ? [this.removeContainer(holder)] : [])]);
    if (handle.disks) await this.removeVolumes(handle.disks);
  }

  private async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      // Gone already, or being removed by someone else: both are what we want.
      if (isNotFound(err) || (err as { statusCode?: number }).statusCode === 409) return;
      throw engineError(err, 'remove the build container');
    }
  }

  /** The holder, then the volumes it held (a volume in use cannot be removed). */
  private async removeDisks(disks: NonNullable<ContainerHandle['disks']>): Promise<void> {
    if (disks.holder) await this.removeContainer(disks.holder);
    await this.removeVolumes(disks);
  }

  /** Both volumes of a pair of disks, side by side. */
  private removeVolumes(disks: NonNullable<ContainerHandle['disks']>): Promise<void> {
    return allOrFirstError([disks.work, disks.tmp].map((name) => this.removeDisk(name)));
  }

  async removeDisk(name: string): Promise<void> {
    try {
      await this.docker.getVolume(name).remove();
    } catch (err) {
      if (isNotFound(err) || (err as { statusCode?: number }).statusCode === 409) return;
      throw engineError(err, 'remove a disk volume');
    }
  }

  async listDisks(labels: Record<string, string>): Promise<{ name: string; labels: Record<string, string> }[]> {
    try {
      const label = [`${LABELS.role}=disk`, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)];
      const found = await this.docker.listVolumes({ filters: JSON.stringify({ label }) });
      return (found.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
    } catch (err) {
      throw engineError(err, 'list disk volumes');
    }
  }

  async list(labels: Record<string, string>): Promise<{ id: string; labels: Record<string, string> }[]> {
    try {
      const found = await this.docker.listContainers({
        all: true,
        filters: JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }),
      });
      return found.map((c) => ({ id: c.Id, labels: c.Labels ?? {} }));
    } catch (err) {
      throw engineError(err, 'list containers');
    }
  }

  /**
   * A new named volume belongs to root; the build runs as BUILD_UID. The volume is made
   * with a label, and a short trusted container (root with only CAP_CHOWN, no network)
   * hands it over; a build cache is first seeded with the image's precompiled standard
   * library (PREPARE_SCRIPT; that container also has CAP_DAC_OVERRIDE and CAP_FOWNER). A volume without the label (made by someone else, or removed and made
   * again implicitly) is handed over again, and so is every volume once per worker process.
   * Checked on every build, since a volume can be removed at any time (docker volume prune).
   * The build cache is also kept within its bound (a short container of the build user
   * that trims it, at most every TRIM_EVERY_MS per volume and worker, beside the build).
   */
  async prepareCache(spec: ContainerSpec): Promise<void> {
    const volumes = [spec.cacheVolume, spec.moduleCache?.volume].filter((v): v is string => v !== undefined);
    // Not recorded (Redis away): the sweep, which needs Redis too, still never removes a mounted volume.
    if (volumes.length) await this.onCacheUse(volumes).catch(() => undefined);
    if (spec.cacheVolume) {
      await this.prepareVolume(spec, spec.cacheVolume, 'seed');
      this.trimLater(spec, spec.cacheVolume);
    }
    // The module cache is written only by the dependency phase; builds mount it read-only.
    if (spec.moduleCache && !spec.moduleCache.readOnly) {
      await this.prepareVolume(spec, spec.moduleCache.volume, 'plain');
      if (spec.moduleCache.maxBytes) await this.trimModules(spec, spec.moduleCache.volume, spec.moduleCache.maxBytes);
    }
  }

  /**
   * Keeps a tenant's module cache within its bound (MODULE_TRIM_SCRIPT), at most every
   * TRIM_EVERY_MS per volume and worker, before the download (which must not see modules
   * vanish under it) and only while no container uses the volume (a build reading it). A
   * trim that fails or cannot run now leaves the cache as it was; a build is never failed for it.
   */
  private async trimModules(spec: ContainerSpec, volume: string, maxBytes: number): Promise<void> {
    if (Date.now() - (this.trimmedAt.get(volume) ?? 0) < TRIM_EVERY_MS) return;
    // Taken before the first await: a second dependency phase of the tenant on this worker skips it.
    this.trimmedAt.set(volume, Date.now());
    try {
      const users = await this.docker.listContainers({ filters: JSON.stringify({ volume: [volume] }) });
      if (users.length) return;
      await this.runOnVolume(spec, volume, ['sh', '-c', MODULE_TRIM_SCRIPT, 'trim', String(Math.floor(maxBytes / 1024))], {
        user: spec.user,
        capAdd: [],
      });
    } catch {
      // Left for the next dependency phase.
    }
  }

  private async prepareVolume(spec: ContainerSpec, volume: string, kind: 'seed' | 'plain'): Promise<void> {
    try {
      const existing = await this.docker
        .getVolume(volume)
        .inspect()
        .catch((err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        });
      // The label says plugforge made it; the chown is done again once per worker process,
      // since one that was stopped halfway (a cancel, a crash) leaves a labelled volume of root's.
      if (existing?.Labels?.[CACHE_LABEL] === BUILD_UID_TEXT && this.prepared.has(volume)) return;
      if (!existing) await this.docker.createVolume({ Name: volume, Labels: { [CACHE_LABEL]: BUILD_UID_TEXT } });
      const capAdd = kind === 'seed' ? SEED_CAPS : ['CHOWN'];
      const status = await this.runOnVolume(spec, volume, ['sh', '-c', PREPARE_SCRIPT, 'prepare', spec.user, kind], {
        user: '0:0',
        capAdd,
      });
      if (status !== 0)
        throw new PlugforgeError('cache_prepare_failed', `could not prepare the cache volume ${volume}`, { status: 500, retryable: true });
      this.prepared.add(volume);
    } catch (err) {
      throw this.prepareError(err, spec);
    }
  }

  /**
   * Trims the build cache to 80 % of its bound once it holds more than the bound
   * (TRIM_SCRIPT), when due: started beside the build rather than awaited before it (a trim
   * is a short container, ~0.7 s here, and finds nothing to do most times). A trim that
   * fails leaves the cache as it was; a build is never failed for it.
   */
  private trimLater(spec: ContainerSpec, volume: string): void {
    const last = this.trimmedAt.get(volume) ?? 0;
    if (Date.now() - last < TRIM_EVERY_MS) return;
    this.trimmedAt.set(volume, Date.now());
    const maxKiB = Math.floor(spec.limits.cacheBytes / 1024);
    const cmd = ['sh', '-c', TRIM_SCRIPT, 'trim', String(maxKiB), String(Math.floor(maxKiB * 0.8))];
    const trim = this.runOnVolume(spec, volume, cmd, { user: spec.user, capAdd: [] })
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => this.trims.delete(volume));
    this.trims.set(volume, trim);
  }

  /** Resolves once every trim started so far has ended (a trim a stopping worker leaves behind is swept with its containers). */
  async trimsDone(): Promise<void> {
    await Promise.all(this.trims.values());
  }

  private prepareError(err: unknown, spec: ContainerSpec): PlugforgeError {
    if (isNotFound(err)) {
      return new PlugforgeError('image_missing', `The builder image ${spec.image} is not on this worker's Docker engine.`, {
        status: 500,
        retryable: false,
      });
    }
    return engineError(err, 'prepare the build cache');
  }

  /** Runs a short trusted command with one volume at /cache: no network, its own limits and deadline. Resolves to its exit status (-1: past the deadline). */
  private async runOnVolume(spec: ContainerSpec, volume: string, cmd: string[], how: { user: string; capAdd: string[] }): Promise<number> {
    const limits = { memoryBytes: PREPARE_LIMITS.memoryBytes, pids: PREPARE_LIMITS.pids };
    const container = await this.docker.createContainer(cacheCommandOptions(spec, volume, cmd, { ...how, ...limits }));
    try {
      await container.start();
      // Past the deadline the container is killed (finally).
      const res = await withDeadline(container.wait() as Promise<{ StatusCode: number }>, PREPARE_LIMITS.timeoutMs, { StatusCode: -1 });
      return res.StatusCode;
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }
}

/** Waits for every promise; then rejects with the first error, if any (none is left unawaited). */
async function allOrFirstError(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * An exec's exit code once the engine has it: its output ends as the process exits (or up
 * to 2 s after, when a child still holds it), and its state follows within moments. A
 * process whose code cannot be read counts as killed (137).
 */
async function execExitCode(exec: Docker.Exec): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const info = await exec.inspect();
    if (!info.Running) return info.ExitCode ?? 137;
    await new Promise((r) => setTimeout(r, 50));
  }
  return 137;
}

/**
 * A container's exit as inspect tells it, looked at every WAIT_POLL_MS until `stop`: a wait
 * the engine never answers (one sent to an engine that was shutting down, whose successor
 * knows the container has ended) does not hold a build until its deadline. Rejects when
 * the engine cannot be asked.
 */
async function exitSeen(container: Docker.Container, stop: AbortSignal): Promise<{ StatusCode: number }> {
  for (;;) {
    await sleep(WAIT_POLL_MS, undefined, { signal: stop }).catch(() => undefined);
    if (stop.aborted) return new Promise<never>(() => undefined);
    const state = (await container.inspect()).State;
    if (state && !state.Running && state.Status !== 'created') return { StatusCode: state.ExitCode };
  }
}
