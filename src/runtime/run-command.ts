import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { CommandResult, RunCommandOptions } from './image-engine.js';

export type { CommandResult, RunCommandOptions };

/**
 * Runs a short trusted command (never request data) in a throw-away container with no
 * network and collects its output. The container is removed whatever happens.
 * DockerImageEngine.runCommand (the contract: ImageEngine, image-engine.ts).
 */
export async function runCommandInImage(
  docker: Docker,
  image: string,
  cmd: string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  const network = options.network ?? 'none';
  const container = await docker.createContainer({
    Image: image,
    Cmd: cmd,
    Env: options.env ?? [],
    NetworkDisabled: network === 'none',
    Labels: { ...options.labels, 'org.plugforge.role': 'check' },
    // Our own short commands, but in an image that runs Go programs: bounded like everything
    // else, a read-only root and a small /tmp the only place it could write.
    HostConfig: {
      NetworkMode: network,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: !options.writableRoot,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=16m' },
      ...(options.binds?.length ? { Binds: options.binds } : {}),
      Memory: options.memoryBytes ?? 512 * 1024 * 1024,
      MemorySwap: options.memoryBytes ?? 512 * 1024 * 1024,
      PidsLimit: 128,
      NanoCpus: 1e9,
      LogConfig: { Type: 'none', Config: {} },
    },
  });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    // The attach stream ends shortly after the container exits; wait for it so no output is lost.
    const ended = new Promise<void>((resolve) => {
      stream.once('end', () => resolve());
      stream.once('close', () => resolve());
    });
    const out = new PassThrough();
    const err = new PassThrough();
    const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
    out.on('data', (c: Buffer) => chunks.out.push(c));
    err.on('data', (c: Buffer) => chunks.err.push(c));
    container.modem.demuxStream(stream, out, err);
    await container.start();
    const timeoutMs = options.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const result = (await Promise.race([
      container.wait(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${cmd.join(' ')} in ${image} did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ])) as { StatusCode: number };
    clearTimeout(timer);
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    const done = {
      exitCode: result.StatusCode,
      stdout: Buffer.concat(chunks.out).toString('utf8'),
      stderr: Buffer.concat(chunks.err).toString('utf8'),
    };
    if (options.afterExit) await options.afterExit({ id: container.id }, done);
    return {
      exitCode: result.StatusCode,
      stdout: Buffer.concat(chunks.out).toString('utf8'),
      stderr: Buffer.concat(chunks.err).toString('utf8'),
    };
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}
