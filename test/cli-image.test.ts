import { execFile } from 'node:child_process';
import { chmod, cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/env.js';
import { startServe, type ServeProcess } from './support/serve-process.js';

const run = promisify(execFile);
const TAG = 'plugforge/cli:test';

let serve: ServeProcess;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-cli-image-'));
  await chmod(work, 0o777);
  await run(path.join(REPO_ROOT, 'scripts', 'build-cli-image.sh'), [TAG], { cwd: REPO_ROOT });
  serve = await startServe();
}, 300_000);

afterAll(async () => {
  await serve?.stop();
  await run('docker', ['image', 'rm', '-f', TAG]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

/** `docker run` of the client's image on the host's network (the test server listens on 127.0.0.1). */
const inImage = (args: string[], mount?: string) =>
  run('docker', ['run', '--rm', '--network', 'host', ...(mount ? ['-v', `${mount}:/src`, '-w', '/src'] : []), TAG, ...args]);

describe('the client image (images/cli/Dockerfile)', () => {
  it('carries Debian’s Node 18 and the client, and says both versions', async () => {
    expect((await inImage(['node', '--version'])).stdout).toMatch(/^v18\./);
    const { stdout } = await inImage(['plugforge', '--version', '--server', serve.url]);
    expect(stdout).toMatch(/^plugforge client \d+\.\d+\.\d+\nplugforge server \d+\.\d+\.\d+ at /);
  }, 60_000);

  it('builds examples/hello as a CI job in the image would', async () => {
    const src = path.join(work, 'hello');
    await cp(path.join(REPO_ROOT, 'examples', 'hello'), src, { recursive: true });
    await chmod(src, 0o777);
    const { stdout } = await inImage(
      ['plugforge', 'build', '.', '--targets', 'linux-amd64,linux-arm64', '--out', 'out', '--server', serve.url, '--quiet'],
      src,
    );
    expect(stdout).toMatch(/linux-amd64\s+succeeded/);
    expect(stdout).toMatch(/linux-arm64\s+succeeded/);
    expect((await readdir(path.join(src, 'out'))).filter((f) => f.endsWith('.so'))).toHaveLength(2);
  }, 120_000);
});
