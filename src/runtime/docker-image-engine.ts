import { readdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { LineSplitter } from '../lines.js';
import { isNotFound } from './docker-client.js';
import {
  ImageBuildFailure,
  type CommandResult,
  type ExitedContainer,
  type ImageBuildSpec,
  type ImageEngine,
  type ImageSummary,
  type RunCommandOptions,
} from './image-engine.js';
import { runCommandInImage } from './run-command.js';

/** One event of the engine's build stream: output, or the build's failure. */
interface BuildEvent {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** The ImageEngine on a Docker engine (image-engine.ts says the contract). */
export class DockerImageEngine implements ImageEngine {
  constructor(private readonly docker: Docker) {}

  async ping(): Promise<void> {
    await this.docker.ping();
  }

  async imageLabels(image: string): Promise<Record<string, string> | undefined> {
    try {
      return (await this.docker.getImage(image).inspect()).Config?.Labels ?? {};
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async listImages(repo: string): Promise<ImageSummary[]> {
    const summaries = await this.docker.listImages({ filters: JSON.stringify({ reference: [`${repo}:*`] }) });
    return summaries.map((s) => ({ id: s.Id, tags: s.RepoTags ?? [], labels: s.Labels ?? {}, size: s.Size, created: s.Created }));
  }

  async removeImage(image: string): Promise<void> {
    try {
      await this.docker.getImage(image).remove({ noprune: true });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async pull(image: string, timeoutMs: number): Promise<boolean> {
    try {
      const stream = await Promise.race([
        this.docker.pull(image),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('pull timed out')), timeoutMs).unref()),
      ]);
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
      });
      await this.docker.getImage(image).inspect();
      return true;
    } catch {
      return false;
    }
  }

  /** `docker build` of the context directory (rm and forcerm: no intermediate container is left behind). */
  async buildImage(spec: ImageBuildSpec, onLine: (line: string) => void): Promise<void> {
    const src = await readdir(spec.contextDir);
    const stream = await this.docker.buildImage(
      { context: spec.contextDir, src },
      { t: spec.tag, buildargs: spec.buildArgs, labels: spec.labels ?? {}, rm: true, forcerm: true },
    );
    const lines = new LineSplitter<'build'>();
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, events: BuildEvent[]) => {
          const failed = err ?? events.find((e) => e.error);
          if (!failed) return resolve();
          reject(new ImageBuildFailure(failed instanceof Error ? failed.message : (failed.errorDetail?.message ?? failed.error ?? '')));
        },
        (event: BuildEvent) => {
          for (const line of lines.push('build', event.stream ?? '')) onLine(line);
        },
      );
    });
  }

  runCommand(image: string, cmd: string[], options: RunCommandOptions = {}): Promise<CommandResult> {
    return runCommandInImage(this.docker, image, cmd, options);
  }

  async commitCopy(
    from: { container: ExitedContainer; path: string },
    onto: { image: string; dir: string; labels?: Record<string, string> },
    as: { repo: string; tag: string; comment: string },
  ): Promise<string> {
    const holder = await this.docker.createContainer({
      Image: onto.image,
      Cmd: ['true'],
      Labels: { ...onto.labels, 'org.plugforge.role': 'check' },
    });
    try {
      const tree = await this.docker.getContainer(from.container.id).getArchive({ path: from.path });
      await holder.putArchive(tree, { path: onto.dir });
      await holder.commit({ repo: as.repo, tag: as.tag, comment: as.comment });
      return `${as.repo}:${as.tag}`;
    } finally {
      await holder.remove({ force: true }).catch(() => undefined);
    }
  }

  async getArchive(from: { container: ExitedContainer; path: string }): Promise<Readable> {
    return (await this.docker.getContainer(from.container.id).getArchive({ path: from.path })) as unknown as Readable;
  }
}
