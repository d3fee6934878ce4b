import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';

/** Writes a file map (relative paths) under `dir`, making the directories. */
export async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
}

/**
 * Runs a real host program on a plugin, the way it runs at start-up, in `image` (a builder
 * image: it has the C library both need); resolves to what the host printed. `loader` runs
 * a program of another architecture (e.g. qemu-aarch64-static -L /usr/aarch64-linux-gnu).
 */
export async function runHostOn(
  docker: Docker,
  image: string,
  workDir: string,
  host: Buffer,
  plugin: Buffer,
  loader: string[] = [],
): Promise<string> {
  const dir = await mkdtemp(path.join(workDir, 'run-'));
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'host'), host, { mode: 0o755 });
  await writeFile(path.join(dir, 'plugin.so'), plugin);
  const container = await docker.createContainer({
    Image: image,
    Cmd: [...loader, '/run/host', '/run/plugin.so'],
    // A terminal: the logs come back as plain text, not multiplexed frames.
    Tty: true,
    NetworkDisabled: true,
    HostConfig: { NetworkMode: 'none', Binds: [`${dir}:/run:ro`] },
  });
  try {
    await container.start();
    await container.wait();
    return (await container.logs({ stdout: true, stderr: true })).toString('utf8');
  } finally {
    await container.remove({ force: true });
  }
}

/** Runs a trusted shell script in `image` with `dir` at /src and no network; fails with its output. */
export async function shInImage(docker: Docker, image: string, dir: string, script: string, env: string[] = []): Promise<void> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['sh', '-ec', script],
    WorkingDir: '/src',
    Env: ['GOCACHE=/tmp/gocache', 'GOPROXY=off', ...env],
    NetworkDisabled: true,
    Tty: true,
    HostConfig: { NetworkMode: 'none', Binds: [`${dir}:/src`] },
  });
  try {
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    if (res.StatusCode !== 0)
      throw new Error(`${script} in ${image} failed: ${(await container.logs({ stdout: true, stderr: true })).toString()}`);
  } finally {
    await container.remove({ force: true });
  }
}
