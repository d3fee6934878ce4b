import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PlugforgeError } from '../../src/errors/plugforge-error.js';
import type { BuildRuntime, ContainerHandle } from '../../src/runtime/build-runtime.js';
import { BUILD_UID, LABELS, type ContainerSpec } from '../../src/runtime/build-spec.js';
import { isNotFound } from '../../src/runtime/docker-client.js';
import { ImageBuildFailure, type ImageEngine } from '../../src/runtime/image-engine.js';

/**
 * The engine contract (src/runtime/build-runtime.ts, src/runtime/image-engine.ts), run against
 * each implementation: test/runtime-contract-fake.test.ts on FakeRuntime and FakeImageEngine,
 * test/runtime-contract-docker.test.ts on DockerRuntime and DockerImageEngine.
 */

/** What a contract container does: print, leave an artifact at /work/out/artifact, run a while, exit. */
export interface ContractProgram {
  stdout?: string;
  artifact?: string;
  runMs?: number;
  exitCode?: number;
}

export interface RuntimeSubject {
  runtime: BuildRuntime;
  images: ImageEngine;
  /** The command of a container that does `program` (the fake: any, its script reads the program by job). */
  command(jobId: string, program: ContractProgram): string[];
  /** An image on the engine, and labels it carries. */
  present: { image: string; repo: string; labels: Record<string, string> };
}

/** The command every contract case runs by ImageEngine.runCommand; the fake's script answers it. */
export const CONTRACT_COMMAND = ['sh', '-c', 'echo out; echo err >&2; exit 4'];
/** The build of an image that fails (a step exiting 3); the fake's script fails tags holding "failing". */
export const FAILING_DOCKERFILE = (from: string) => `FROM ${from}\nRUN exit 3\n`;

/** A job id of its own for each container a case makes, so cases never see each other's. */
const jobIdOf = () => `contract-${randomBytes(4).toString('hex')}`;

function specOf(subject: RuntimeSubject, jobId: string, program: ContractProgram): ContainerSpec {
  return {
    jobId,
    image: subject.present.image,
    cmd: subject.command(jobId, program),
    env: [],
    workdir: '/work',
    user: `${BUILD_UID}:${BUILD_UID}`,
    network: 'none',
    labels: { [LABELS.job]: jobId, [LABELS.role]: 'build', [LABELS.step]: 'build', [LABELS.worker]: 'runtime-contract' },
    limits: {
      memoryBytes: 64 * 1024 * 1024,
      nanoCpus: 1e9,
      pidsLimit: 64,
      timeoutMs: 60_000,
      maxLogBytes: 1024 * 1024,
      maxArtifactBytes: 1024 * 1024,
      workBytes: 16 * 1024 * 1024,
      tmpfsBytes: 16 * 1024 * 1024,
      cacheBytes: 64 * 1024 * 1024,
    },
  };
}

/** The source a build gets: here only /work/out, made the build user's. */
function outDirTar(): Readable {
  const pack = tar.pack();
  pack.entry({ name: 'out', type: 'directory', mode: 0o755, uid: BUILD_UID, gid: BUILD_UID });
  pack.finalize();
  return pack.pipe(new PassThrough());
}

/** The files of a tar stream: name and text. */
async function filesOf(archive: Readable): Promise<{ name: string; text: string }[]> {
  const files: { name: string; text: string }[] = [];
  const extract = tar.extract();
  archive.pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    files.push({ name: entry.header.name, text: Buffer.concat(chunks).toString('utf8') });
  }
  return files;
}

function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

export function runtimeContract(name: string, open: () => Promise<RuntimeSubject>): void {
  describe(`${name}: the BuildRuntime contract`, () => {
    let subject: RuntimeSubject;
    let runtime: BuildRuntime;
    const made: ContainerHandle[] = [];

    beforeEach(async () => {
      subject = await open();
      runtime = subject.runtime;
    });

    afterEach(async () => {
      await Promise.all(made.splice(0).map((h) => runtime.destroy(h).catch(() => undefined)));
    });

    const create = async (program: ContractProgram) => {
      const jobId = jobIdOf();
      const handle = await runtime.create(specOf(subject, jobId, program));
      made.push(handle);
      return { jobId, handle };
    };
    const byJob = (jobId: string) => ({ [LABELS.job]: jobId, [LABELS.role]: 'build' });

    it('runs a container in the order create, putArchive, start, wait, getArchive, destroy', async () => {
      const { jobId, handle } = await create({ stdout: 'hello from the container\n', artifact: 'the artifact' });
      await runtime.putArchive(handle, '/work', outDirTar());
      const out = collector();
      await runtime.start(handle, out.stream);
      const exit = await runtime.wait(handle, AbortSignal.timeout(60_000));
      expect(exit).toMatchObject({ exitCode: 0, oomKilled: false });
      expect(await filesOf(await runtime.getArchive(handle, '/work/out/artifact'))).toEqual([{ name: 'artifact', text: 'the artifact' }]);
      await runtime.destroy(handle);
      expect(out.text()).toBe('hello from the container\n');
      expect(await runtime.list(byJob(jobId))).toEqual([]);
    });

    it("says the container's exit code", async () => {
      const { handle } = await create({ exitCode: 3 });
      await runtime.putArchive(handle, '/work', outDirTar());
      await runtime.start(handle, new PassThrough().resume());
      expect(await runtime.wait(handle, AbortSignal.timeout(60_000))).toMatchObject({ exitCode: 3, oomKilled: false });
    });

    it('rejects getArchive of a path the container did not write with code artifact_missing', async () => {
      const { handle } = await create({});
      await runtime.putArchive(handle, '/work', outDirTar());
      await runtime.start(handle, new PassThrough().resume());
      expect((await runtime.wait(handle, AbortSignal.timeout(60_000))).exitCode).toBe(0);
      const err = await runtime.getArchive(handle, '/work/out/artifact').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PlugforgeError);
      expect((err as PlugforgeError).code).toBe('artifact_missing');
    });

    it('destroys idempotently: a container already gone, or never made, is success', async () => {
      const { jobId, handle } = await create({});
      await runtime.destroy(handle);
      await runtime.destroy(handle);
      await runtime.destroy({ id: `${jobId}-never-made` });
      expect(await runtime.list(byJob(jobId))).toEqual([]);
    });

    it('lists the containers carrying all the given labels', async () => {
      const first = await create({});
      const second = await create({});
      expect((await runtime.list(byJob(first.jobId))).map((c) => c.id)).toEqual([first.handle.id]);
      const listed = await runtime.list({ [LABELS.worker]: 'runtime-contract', [LABELS.role]: 'build' });
      expect(listed.map((c) => c.id)).toEqual(expect.arrayContaining([first.handle.id, second.handle.id]));
      expect(listed.find((c) => c.id === second.handle.id)?.labels[LABELS.job]).toBe(second.jobId);
      expect(await runtime.list({ ...byJob(first.jobId), [LABELS.worker]: 'someone-else' })).toEqual([]);
    });

    it('rejects wait when its signal aborts; the container is then gone once destroyed', async () => {
      const { jobId, handle } = await create({ runMs: 60_000 });
      await runtime.putArchive(handle, '/work', outDirTar());
      await runtime.start(handle, new PassThrough().resume());
      const abort = new AbortController();
      setTimeout(() => abort.abort(new Error('canceled')), 300);
      const started = Date.now();
      await expect(runtime.wait(handle, abort.signal)).rejects.toThrow('canceled');
      expect(Date.now() - started).toBeLessThan(30_000);
      await runtime.destroy(handle);
      expect(await runtime.list(byJob(jobId))).toEqual([]);
    });
  });

  describe(`${name}: the ImageEngine contract`, () => {
    let subject: RuntimeSubject;
    let images: ImageEngine;

    beforeEach(async () => {
      subject = await open();
      images = subject.images;
    });

    it('answers ping', async () => {
      await expect(images.ping()).resolves.toBeUndefined();
    });

    it('gives the labels of an image that is there, and "not there" (undefined) for one that is not', async () => {
      expect(await images.imageLabels(subject.present.image)).toMatchObject(subject.present.labels);
      expect(await images.imageLabels(`${subject.present.repo}:no-such-tag-${randomBytes(3).toString('hex')}`)).toBeUndefined();
    });

    it('lists the images of a repository by their tags', async () => {
      const listed = await images.listImages(subject.present.repo);
      const found = listed.find((i) => i.tags.includes(subject.present.image));
      expect(found).toBeDefined();
      expect(found?.labels).toMatchObject(subject.present.labels);
      expect(listed.every((i) => i.tags.some((t) => t.startsWith(`${subject.present.repo}:`)))).toBe(true);
      expect(await images.listImages(`plugforge-contract/none-${randomBytes(3).toString('hex')}`)).toEqual([]);
    });

    it('removes an image idempotently: one not there is success', async () => {
      await expect(images.removeImage(`plugforge-contract/none:${randomBytes(3).toString('hex')}`)).resolves.toBeUndefined();
    });

    it('says false for a pull that finds nothing', async () => {
      expect(await images.pull(`plugforge-contract/none:${randomBytes(3).toString('hex')}`, 5_000)).toBe(false);
    });

    it('runs a command in an image: its stdout, stderr and exit code, afterExit before the container goes', async () => {
      const seen: { id: string; exitCode: number }[] = [];
      const res = await images.runCommand(subject.present.image, CONTRACT_COMMAND, {
        afterExit: async (c, r) => void seen.push({ id: c.id, exitCode: r.exitCode }),
      });
      expect(res).toEqual({ exitCode: 4, stdout: 'out\n', stderr: 'err\n' });
      expect(seen).toEqual([{ id: expect.any(String), exitCode: 4 }]);
    });

    it('rejects a command in an image that is not there with "not found"', async () => {
      const err = await images.runCommand(`plugforge-contract/none:${randomBytes(3).toString('hex')}`, ['true']).catch((e: unknown) => e);
      expect(isNotFound(err)).toBe(true);
    });

    it('builds an image with its build args and labels, telling each line; a failing build rejects with ImageBuildFailure', async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-contract-'));
      const tag = `plugforge-contract/built:${randomBytes(3).toString('hex')}`;
      const failing = `plugforge-contract/failing:${randomBytes(3).toString('hex')}`;
      try {
        await writeFile(path.join(dir, 'Dockerfile'), `ARG BASE\nFROM \${BASE}\nLABEL org.plugforge.contract=yes\n`);
        const lines: string[] = [];
        await images.buildImage(
          { contextDir: dir, tag, buildArgs: { BASE: subject.present.image }, labels: { 'org.plugforge.contract.extra': 'given' } },
          (l) => lines.push(l),
        );
        expect(lines.some((l) => /^Step 1\/\d+ :/.test(l))).toBe(true);
        expect(await images.imageLabels(tag)).toMatchObject({ 'org.plugforge.contract.extra': 'given' });
        await writeFile(path.join(dir, 'Dockerfile'), FAILING_DOCKERFILE(subject.present.image));
        await expect(images.buildImage({ contextDir: dir, tag: failing, buildArgs: {} }, () => undefined)).rejects.toBeInstanceOf(
          ImageBuildFailure,
        );
        expect(await images.imageLabels(failing)).toBeUndefined();
      } finally {
        await images.removeImage(tag);
        await rm(dir, { recursive: true, force: true });
      }
      expect(await images.imageLabels(tag)).toBeUndefined();
    });
  });
}
