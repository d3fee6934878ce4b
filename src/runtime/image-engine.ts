import type { Readable } from 'node:stream';

/** What a short command run in an image printed, and how it ended. */
export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The container a command ran in, once it has exited (before it is removed): what commitCopy copies from. */
export interface ExitedContainer {
  id: string;
}

export interface RunCommandOptions {
  timeoutMs?: number;
  env?: string[];
  /** Added to role=check (a worker adds its own and its installation's, so its sweep finds what a crash left). */
  labels?: Record<string, string>;
  /** 'none' unless the command must reach a server (an http(s) module proxy). */
  network?: 'none' | 'bridge';
  /** Read-only host directories only (a file:// module proxy): "host:container:ro". */
  binds?: string[];
  /** A command whose output is files read back with afterExit. */
  writableRoot?: boolean;
  memoryBytes?: number;
  /** Runs once the command has exited, before the container is removed (e.g. commitCopy of what it wrote). */
  afterExit?: (container: ExitedContainer, result: CommandResult) => Promise<void>;
}

/** One image of a repository as the engine lists it. */
export interface ImageSummary {
  id: string;
  /** Its "repo:tag" names. */
  tags: string[];
  labels: Record<string, string>;
  size: number;
  /** When it was made, in seconds since the epoch. */
  created: number;
}

/** An image build: a context directory (its Dockerfile at the top), its tag, build args and labels. */
export interface ImageBuildSpec {
  contextDir: string;
  tag: string;
  buildArgs: Record<string, string>;
  labels?: Record<string, string>;
}

/** An image build that ran and failed (a step's command, the Dockerfile): the engine's own message. */
export class ImageBuildFailure extends Error {
  override readonly name = 'ImageBuildFailure';
}

/**
 * What the builder images (src/images/) need from the engine: look at, list, build, pull,
 * check and remove images. Implementations: DockerImageEngine (docker-image-engine.ts) and
 * FakeImageEngine (fake-runtime.ts, in memory). Errors of the engine itself (unreachable,
 * a 5xx) reach the caller as the engine gave them (isDockerUnreachable and isNotFound,
 * docker-client.ts, classify them); "not there" is an answer, not an error, where a method
 * says so. Any number of calls at once.
 */
export interface ImageEngine {
  /** Resolves when the engine answers. */
  ping(): Promise<void>;
  /** The image's labels; undefined when there is no such image. */
  imageLabels(image: string): Promise<Record<string, string> | undefined>;
  /** The images named `repo:*`, whatever their labels. */
  listImages(repo: string): Promise<ImageSummary[]>;
  /** Removes the tag (and the image when nothing else names it; its parents are kept). Idempotent; "already gone" is success. */
  removeImage(image: string): Promise<void>;
  /** Tries to pull `image` within `timeoutMs`; false when it could not (no registry, no such image, too slow). Never rejects. */
  pull(image: string, timeoutMs: number): Promise<boolean>;
  /**
   * Builds and tags an image, giving each line of its output to `onLine` as it comes.
   * Rejects with ImageBuildFailure when the build ran and failed; with the engine's error
   * when it could not start.
   */
  buildImage(spec: ImageBuildSpec, onLine: (line: string) => void): Promise<void>;
  /**
   * Runs a short trusted command (never request data) in a throw-away container of `image`,
   * no network unless asked, and collects its output; the container is removed whatever
   * happens. Rejects (a 404) when there is no such image, and past `timeoutMs` (default 60 s).
   */
  runCommand(image: string, cmd: string[], options?: RunCommandOptions): Promise<CommandResult>;
  /**
   * Copies `from.path` of an exited container into `dir` of a new container of `onto.image`
   * and commits that as `as.repo:as.tag` (the copy in one layer of its own); returns that
   * name. The new container is removed whatever happens.
   */
  commitCopy(
    from: { container: ExitedContainer; path: string },
    onto: { image: string; dir: string; labels?: Record<string, string> },
    as: { repo: string; tag: string; comment: string },
  ): Promise<string>;
  /** A path an exited container wrote (in afterExit), as the engine's tar archive of it. */
  getArchive(from: { container: ExitedContainer; path: string }): Promise<Readable>;
}
