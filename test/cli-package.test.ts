import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readElfHeader } from '../src/verify/elf-header.js';
import { REPO_ROOT } from './support/env.js';
import { startServe, type ServeProcess } from './support/serve-process.js';

const run = promisify(execFile);

/** The server's packages the client package must not carry (docs/cli.md, "The client package"). */
const SERVER_ONLY = ['dockerode', 'bullmq', 'ioredis', 'express', '@aws-sdk/client-s3', 'pino', 'prom-client', 'busboy'];

/** Every package folder under a node_modules tree, scoped ones as "@scope/name". */
async function installedPackages(nodeModules: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      if (e.name.startsWith('@')) {
        for (const s of await readdir(path.join(dir, e.name))) {
          found.push(`${e.name}/${s}`);
          await walk(path.join(dir, e.name, s, 'node_modules'));
        }
        continue;
      }
      found.push(e.name);
      await walk(path.join(dir, e.name, 'node_modules'));
    }
  };
  await walk(nodeModules);
  return found;
}

let work: string;
let prefix: string;
let serve: ServeProcess;
/** Only Node's own folder on PATH: nothing of this repository, no other plugforge. */
let env: NodeJS.ProcessEnv;
const cli = () => path.join(prefix, 'bin', 'plugforge');

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-cli-package-'));
  prefix = path.join(work, 'prefix');
  env = { PATH: path.dirname(process.execPath), HOME: work, npm_config_cache: path.join(os.homedir(), '.npm') };
  await run('npm', ['run', '--silent', 'build:cli'], { cwd: REPO_ROOT });
  const { stdout } = await run('npm', ['pack', path.join(REPO_ROOT, 'packages', 'cli'), '--pack-destination', work, '--json'], {
    cwd: work,
  });
  const tarball = path.join(work, (JSON.parse(stdout) as { filename: string }[])[0]!.filename);
  // From the tarball into an empty prefix, as `npm install -g` would; its two dependencies
  // come from npm's cache (filled by npm ci) or the registry.
  await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], {
    cwd: work,
    env: { ...process.env, ...env },
  });
  serve = await startServe();
}, 240_000);

afterAll(async () => {
  await serve?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('the client package (packages/cli)', () => {
  it('installs from its tarball with only the client’s dependencies, none of the server’s', async () => {
    const installed = await installedPackages(path.join(prefix, 'lib', 'node_modules'));
    expect(installed).toContain('plugforge-cli');
    expect(installed).toContain('zod');
    expect(installed).toContain('tar-stream');
    for (const name of SERVER_ONLY) expect(installed, `${name} in the installed client`).not.toContain(name);
    const manifest = JSON.parse(await readFile(path.join(REPO_ROOT, 'packages', 'cli', 'package.json'), 'utf8'));
    const root = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    // One version for both, and the client's dependency ranges are the server's own.
    expect(manifest.version).toBe(root.version);
    for (const [name, range] of Object.entries(manifest.dependencies)) expect(root.dependencies[name], name).toBe(range);
    // Every package the shipped code imports is one it declares (node: modules aside).
    const shipped = path.join(prefix, 'lib', 'node_modules', 'plugforge-cli', 'dist');
    const files = ((await readdir(shipped, { recursive: true })) as string[]).filter((f) => f.endsWith('.js'));
    const imported = new Set<string>();
    for (const f of files) {
      const text = await readFile(path.join(shipped, f), 'utf8');
      for (const m of text.matchAll(/(?:from |import\()'([^'.][^']*)'/g)) if (!m[1]!.startsWith('node:')) imported.add(m[1]!);
    }
    expect([...imported].sort()).toEqual(Object.keys(manifest.dependencies).sort());
  });

  it('says its version, and the server’s when one is named', async () => {
    const alone = await run(cli(), ['--version'], { cwd: work, env });
    expect(alone.stdout.trim()).toMatch(/^plugforge client \d+\.\d+\.\d+$/);
    const both = await run(cli(), ['--version', '--server', serve.url], { cwd: work, env });
    expect(both.stdout).toMatch(new RegExp(`plugforge server \\d+\\.\\d+\\.\\d+ at ${serve.url.replace(/\./g, '\\.')}`));
  });

  it('refuses the server’s commands with a sentence (exit 2)', async () => {
    const err = await run(cli(), ['serve'], { cwd: work, env }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toContain('the server is not part of the client package');
  });

  it('builds examples/hello against a running server, from a directory outside the repository', async () => {
    const src = path.join(work, 'hello');
    await cp(path.join(REPO_ROOT, 'examples', 'hello'), src, { recursive: true });
    const out = path.join(work, 'out');
    await mkdir(out);
    const res = await run(cli(), ['build', src, '--targets', 'linux-amd64', '--out', out, '--server', serve.url, '--quiet'], {
      cwd: work,
      env,
    });
    expect(res.stdout).toMatch(/linux-amd64\s+succeeded/);
    const files = await readdir(out);
    const so = files.find((f) => f.endsWith('.so'));
    expect(so, files.join(', ')).toBeDefined();
    const header = readElfHeader(await readFile(path.join(out, so!)));
    expect(header?.machine).toBe(62); // EM_X86_64
  }, 180_000);
});
