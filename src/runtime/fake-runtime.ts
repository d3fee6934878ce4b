import { PassThrough, Readable, type Writable } from 'node:stream';
import tar from 'tar-stream';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { BuildRuntime, ContainerHandle, ExitStatus } from './build-runtime.js';
import { CONTAINER_PATHS, LABELS, type ContainerSpec } from './build-spec.js';
import { isTargetId, type TargetId } from '../contract/targets.js';
import {
  ImageBuildFailure,
  type CommandResult,
  type ImageBuildSpec,
  type ImageEngine,
  type ImageSummary,
  type RunCommandOptions,
} from './image-engine.js';

/**
 * What a test's script sees of a container: its spec, and the facts of its step as the
 * worker labelled and commanded it (the step and its target from the labels, the artifact
 * from the command line). A dependency phase reads as linux-amd64.
 */
export type FakeSpec = ContainerSpec & {
  kind: 'dependencies' | 'build' | 'verify';
  buildId: string;
  target: TargetId;
  artifactName: string;
};

function describeSpec(spec: ContainerSpec): FakeSpec {
  const target = spec.labels[LABELS.target];
  const out = spec.cmd.find((a) => a.startsWith(`${CONTAINER_PATHS.out}/`));
  return {
    ...spec,
    kind: (spec.labels[LABELS.step] ?? 'build') as FakeSpec['kind'],
    buildId: spec.labels[LABELS.build] ?? '',
    target: target && isTargetId(target) ? target : 'linux-amd64',
    artifactName: out ? out.slice(CONTAINER_PATHS.out.length + 1) : 'none',
  };
}

/** What one fake container does. */
export interface FakeScript {
  createError?: Error;
  /** Printed on stderr at start. */
  output?: string;
  /** Printed on stdout at start. */
  stdout?: string;
  exitCode?: number;
  oomKilled?: boolean;
  /** Disks full when it ended. */
  full?: ('work' | 'tmp')[];
  /** How long the container runs before exiting. */
  runMs?: number;
  /** Rejects wait() with this after runMs (an engine that vanished mid-build). */
  waitError?: Error;
  /** What getArchive returns: the artifact bytes, a symlink, two files, or nothing. */
  artifact?: Buffer | 'symlink' | 'two-files' | 'none';
}

export interface FakeContainer {
  id: string;
  spec: FakeSpec;
  state: 'created' | 'running' | 'exited' | 'removed';
  killed: boolean;
  putEntries: { name: string; uid: number; gid: number; type: string }[];
  /** The disks it runs on: its own, or (the holder made of a sandbox) its build's. */
  disks: NonNullable<ContainerHandle['disks']>;
}

/**
 * A scripted BuildRuntime for orchestration tests (retries, cancel, timeouts, teardown):
 * no Docker, each container does what `script(spec, attempt)` says. It never stands as
 * proof that a build works; the Docker suites do that. It keeps the BuildRuntime contract
 * as DockerRuntime does (test/support/runtime-contract.ts runs the same cases on both).
 */
export class FakeRuntime implements BuildRuntime {
  readonly containers = new Map<string, FakeContainer>();
  readonly events: string[] = [];
  private seq = 0;
  private readonly creates = new Map<string, number>();

  private readonly script: (spec: FakeSpec, attempt: number) => FakeScript;

  /** A loading probe (spec.kind "verify") reports "loaded" unless its script prints otherwise. */
  constructor(script: (spec: FakeSpec, attempt: number) => FakeScript) {
    this.script = (spec, attempt) => {
      const s = script(spec, attempt);
      return spec.kind === 'verify' && s.stdout === undefined ? { ...s, stdout: '{"result":"loaded"}\n' } : s;
    };
  }

  private scriptFor(spec: FakeSpec): FakeScript {
    return this.script(spec, this.creates.get(`${spec.jobId} ${spec.kind}`) ?? 1);
  }

  async prepareCache(): Promise<void> {}

  async create(container: ContainerSpec, sandbox?: ContainerSpec): Promise<ContainerHandle> {
    const c = this.make(container);
    if (!sandbox) return { id: c.id, spec: c.spec, disks: c.disks };
    // The holder of its disks, made of the sandbox (the loading probe), runs it later.
    const holder = this.make(sandbox, c.disks);
    holder.state = 'running';
    c.disks.holder = holder.id;
    return { id: c.id, spec: c.spec, disks: c.disks, sandbox };
  }

  private make(container: ContainerSpec, disks?: FakeContainer['disks']): FakeContainer {
    const spec = describeSpec(container);
    // Attempts are counted per job and kind of step: the holder made of a probe's spec is made with its build.
    const attempt = (this.creates.get(`${spec.jobId} ${spec.kind}`) ?? 0) + 1;
    this.creates.set(`${spec.jobId} ${spec.kind}`, attempt);
    const s = this.script(spec, attempt);
    this.events.push(`create ${spec.jobId}`);
    if (s.createError) throw s.createError;
    const id = `fake${++this.seq}`;
    const c: FakeContainer = {
      id,
      spec,
      state: 'created',
      killed: false,
      putEntries: [],
      disks: disks ?? { work: `work-${id}`, tmp: `tmp-${id}` },
    };
    this.containers.set(id, c);
    return c;
  }

  async putArchive(handle: ContainerHandle, _dir: string, archive: Readable): Promise<void> {
    const c = this.must(handle.id);
    const extract = tar.extract();
    extract.on('entry', (h, stream, next) => {
      c.putEntries.push({ name: h.name, uid: h.uid ?? -1, gid: h.gid ?? -1, type: h.type ?? 'file' });
      stream.resume();
      stream.on('end', next);
    });
    await new Promise<void>((resolve, reject) => {
      extract.on('finish', resolve);
      extract.on('error', reject);
      archive.on('error', reject);
      archive.pipe(extract);
    });
  }

  async start(handle: ContainerHandle, stdout: Writable, stderr: Writable = stdout): Promise<void> {
    const c = this.must(handle.id);
    c.state = 'running';
    this.print(c, stdout, stderr);
  }

  async wait(handle: ContainerHandle, signal: AbortSignal): Promise<ExitStatus> {
    const c = this.must(handle.id);
    try {
      return await this.runFor(c, signal);
    } finally {
      if (!c.killed) c.state = 'exited';
    }
  }

  /** The holder's sandbox, as its script says; an abort kills the holder. */
  async runInHolder(handle: ContainerHandle, stdout: Writable, stderr: Writable, signal: AbortSignal): Promise<ExitStatus> {
    const holder = this.must(handle.disks?.holder ?? 'none');
    this.print(holder, stdout, stderr);
    try {
      return await this.runFor(holder, signal);
    } catch (err) {
      holder.state = 'exited';
      throw err;
    }
  }

  private print(c: FakeContainer, stdout: Writable, stderr: Writable): void {
    this.events.push(`start ${c.spec.jobId}`);
    const s = this.scriptFor(c.spec);
    if (s.stdout) stdout.write(s.stdout);
    if (s.output) stderr.write(s.output);
    stdout.end();
    if (stderr !== stdout) stderr.end();
  }

  /** Waits the script's run time (killed when `signal` aborts) and says how it ended. */
  private async runFor(c: FakeContainer, signal: AbortSignal): Promise<ExitStatus> {
    const s = this.scriptFor(c.spec);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, s.runMs ?? 0);
      const onAbort = () => {
        clearTimeout(timer);
        c.killed = true;
        this.events.push(`kill ${c.spec.jobId}`);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    if (s.waitError) throw s.waitError;
    return { exitCode: s.exitCode ?? 0, oomKilled: s.oomKilled ?? false, full: s.full ?? [] };
  }

  async getArchive(handle: ContainerHandle, path: string): Promise<Readable> {
    const c = this.must(handle.id);
    const s = this.scriptFor(c.spec);
    const name = path.split('/').pop() ?? 'x';
    const pack = tar.pack();
    const artifact = s.artifact ?? 'none';
    if (artifact === 'symlink') pack.entry({ name, type: 'symlink', linkname: '/etc/passwd' });
    else if (artifact === 'two-files') {
      pack.entry({ name }, Buffer.from('one'));
      pack.entry({ name: `${name}.extra` }, Buffer.from('two'));
    } else if (artifact !== 'none') pack.entry({ name }, artifact);
    else throw new PlugforgeError('artifact_missing', `go build exited 0 but wrote no ${name}.`, { status: 500 });
    pack.finalize();
    const out = new PassThrough();
    pack.pipe(out);
    return out;
  }

  /** The container, and with its disks their holder. */
  async destroy(handle: Pick<ContainerHandle, 'id' | 'disks'>): Promise<void> {
    for (const id of [handle.id, handle.disks?.holder]) {
      const c = id === undefined ? undefined : this.containers.get(id);
      if (!c || c.state === 'removed') continue;
      c.state = 'removed';
      this.events.push(`destroy ${c.spec.jobId}`);
    }
  }

  async list(labels: Record<string, string>): Promise<{ id: string; labels: Record<string, string> }[]> {
    return [...this.containers.values()]
      .filter((c) => c.state !== 'removed' && Object.entries(labels).every(([k, v]) => c.spec.labels[k] === v))
      .map((c) => ({ id: c.id, labels: c.spec.labels }));
  }

  async fullDisks(handle: ContainerHandle): Promise<('work' | 'tmp')[]> {
    return this.scriptFor(this.must(handle.id).spec).full ?? [];
  }

  async listDisks(): Promise<{ name: string; labels: Record<string, string> }[]> {
    return [];
  }

  async removeDisk(): Promise<void> {}

  /** Containers not removed yet. */
  alive(): FakeContainer[] {
    return [...this.containers.values()].filter((c) => c.state !== 'removed');
  }

  private must(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c || c.state === 'removed') throw Object.assign(new Error(`no such container ${id}`), { statusCode: 404 });
    return c;
  }
}

/** An image of FakeImageEngine. */
export interface FakeImage {
  id: string;
  labels: Record<string, string>;
  size: number;
  created: number;
}

/** How FakeImageEngine answers what it cannot know: commands, pulls and failing builds. */
export interface FakeImageScript {
  /** What a command prints and how it exits (default: nothing, 0). */
  run?: (image: string, cmd: string[]) => CommandResult;
  /** Images a pull finds, with their labels. */
  registry?: Record<string, Record<string, string>>;
  /** The engine's message when this build fails; undefined: it succeeds. */
  failBuild?: (spec: ImageBuildSpec) => string | undefined;
  /** What a command of `image` wrote at `path` (getArchive); undefined: nothing. */
  file?: (image: string, path: string) => Buffer | undefined;
}

/**
 * An in-memory ImageEngine for tests of what is built and checked, with no engine: images
 * by name, builds that make them (their labels, the build args as they were given),
 * commands answered by the script. `reachable = false` makes every call but pull fail as an
 * engine that is gone does (ECONNREFUSED).
 */
export class FakeImageEngine implements ImageEngine {
  readonly images = new Map<string, FakeImage>();
  /** Every image build and command, in order: "build <tag>", "run <image> <cmd…>", "commit <name>". */
  readonly events: string[] = [];
  reachable = true;
  private seq = 0;
  /** Commands' containers while their afterExit runs, with their image. */
  private readonly ran = new Map<string, string>();

  constructor(private readonly script: FakeImageScript = {}) {}

  /** Puts an image on the engine, as `docker tag` or a pull would. */
  add(name: string, labels: Record<string, string> = {}): FakeImage {
    const image = { id: `sha256:fake${++this.seq}`, labels: { ...labels }, size: 1000, created: Math.floor(Date.now() / 1000) };
    this.images.set(name, image);
    return image;
  }

  async ping(): Promise<void> {
    this.answer();
  }

  async imageLabels(image: string): Promise<Record<string, string> | undefined> {
    this.answer();
    const found = this.images.get(image);
    return found ? { ...found.labels } : undefined;
  }

  async listImages(repo: string): Promise<ImageSummary[]> {
    this.answer();
    const byId = new Map<string, ImageSummary>();
    for (const [name, image] of this.images) {
      if (!name.startsWith(`${repo}:`)) continue;
      const summary = byId.get(image.id) ?? {
        id: image.id,
        tags: [],
        labels: { ...image.labels },
        size: image.size,
        created: image.created,
      };
      summary.tags.push(name);
      byId.set(image.id, summary);
    }
    return [...byId.values()];
  }

  async removeImage(image: string): Promise<void> {
    this.answer();
    this.images.delete(image);
  }

  async pull(image: string, _timeoutMs: number): Promise<boolean> {
    const labels = this.reachable ? this.script.registry?.[image] : undefined;
    if (!labels) return false;
    this.add(image, labels);
    return true;
  }

  async buildImage(spec: ImageBuildSpec, onLine: (line: string) => void): Promise<void> {
    this.answer();
    this.events.push(`build ${spec.tag}`);
    onLine(`Step 1/1 : FROM ${spec.buildArgs.BASE ?? 'scratch'}`);
    const failed = this.script.failBuild?.(spec);
    if (failed !== undefined) throw new ImageBuildFailure(failed);
    this.add(spec.tag, spec.labels);
  }

  async runCommand(image: string, cmd: string[], options: RunCommandOptions = {}): Promise<CommandResult> {
    this.answer();
    if (!this.images.has(image)) throw Object.assign(new Error(`No such image: ${image}`), { statusCode: 404 });
    this.events.push(`run ${image} ${cmd.join(' ')}`);
    const result = this.script.run?.(image, cmd) ?? { exitCode: 0, stdout: '', stderr: '' };
    const id = `fakecmd${++this.seq}`;
    this.ran.set(id, image);
    try {
      if (options.afterExit) await options.afterExit({ id }, result);
    } finally {
      this.ran.delete(id);
    }
    return result;
  }

  async getArchive(from: { container: { id: string }; path: string }): Promise<Readable> {
    this.answer();
    const image = this.ran.get(from.container.id);
    if (!image) throw Object.assign(new Error(`no such container ${from.container.id}`), { statusCode: 404 });
    const bytes = this.script.file?.(image, from.path);
    if (!bytes)
      throw Object.assign(new Error(`Could not find the file ${from.path} in container ${from.container.id}`), { statusCode: 404 });
    const pack = tar.pack();
    pack.entry({ name: from.path.split('/').pop() ?? 'x' }, bytes);
    pack.finalize();
    const out = new PassThrough();
    pack.pipe(out);
    return out;
  }

  async commitCopy(_from: { path: string }, onto: { image: string }, as: { repo: string; tag: string }): Promise<string> {
    this.answer();
    const base = this.images.get(onto.image);
    if (!base) throw Object.assign(new Error(`No such image: ${onto.image}`), { statusCode: 404 });
    const name = `${as.repo}:${as.tag}`;
    this.events.push(`commit ${name}`);
    this.add(name, base.labels);
    return name;
  }

  /** Throws as a call to an engine that is gone does. */
  private answer(): void {
    if (!this.reachable) throw Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });
  }
}

/** A minimal ELF shared-object header for a target's class and machine. */
export function fakeElf(elfClass: 1 | 2, machine: number, type = 3): Buffer {
  const b = Buffer.alloc(256);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = elfClass;
  b[5] = 1;
  b[6] = 1;
  b.writeUInt16LE(type, 16);
  b.writeUInt16LE(machine, 18);
  return b;
}

export function readableOf(buf: Buffer): Readable {
  return Readable.from([buf]);
}
