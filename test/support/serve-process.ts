import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { requireCompiledCli } from './cli.js';
import { eventually } from './eventually.js';
import { REPO_ROOT, TEST_REDIS_URL } from './env.js';
import { freePort } from './free-port.js';
import { ApiClient } from './http.js';

/**
 * `plugforge serve` as a user runs it (the compiled CLI, a process of its own), on a queue of
 * its own in the test Redis and a data directory of its own. Tests that must see what a
 * real client sees (headers, timings, a process that must not die) start one with
 * `startServe` and stop it with `stop()`.
 */
export interface ServeProcess {
  readonly port: number;
  readonly url: string;
  readonly queue: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** A client without a token (use TenantClient with `url` for one with a token). */
  readonly api: ApiClient;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  alive(): boolean;
  /** SIGTERM, as a user's Ctrl-C: running builds finish first; waits up to 60 s. */
  stop(): Promise<void>;
}

export async function startServe(env: Record<string, string> = {}, readyTimeoutMs = 60_000): Promise<ServeProcess> {
  requireCompiledCli();
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-serve-'));
  const queue = `serve-${randomBytes(4).toString('hex')}`;
  let printed = '';
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'plugforge.js'), 'serve'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PLUGFORGE_REDIS_URL: TEST_REDIS_URL,
      PLUGFORGE_PORT: String(port),
      PLUGFORGE_HOST: '127.0.0.1',
      PLUGFORGE_DATA_DIR: dataDir,
      PLUGFORGE_QUEUE: queue,
      PLUGFORGE_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (printed += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (printed += d.toString()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const url = `http://127.0.0.1:${port}`;
  const api = new ApiClient(url);
  const ready = async () => {
    if (!alive()) throw new Error('it exited');
    return (await api.get('/readyz').catch(() => ({ status: 0 }))).status === 200;
  };
  await eventually(ready, { timeoutMs: readyTimeoutMs, intervalMs: 250 }).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`plugforge serve did not become ready (${err.message}): ${printed}`);
  });
  const stop = async () => {
    if (!alive()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
    if (alive()) child.kill('SIGKILL');
  };
  return { port, url, queue, dataDir, child, api, output: () => printed, alive, stop };
}

/**
 * A second client asking `/healthz` every `everyMs` while something else runs: the longest
 * answer it waited for is how long the API's event loop was held. Each request opens its own
 * connection, so a busy keep-alive socket cannot hide a delay.
 */
export interface HealthWatch {
  /** How many answers it had so far. */
  answered(): number;
  /** Stops asking; resolves with the slowest answer in milliseconds and how many were asked. */
  stop(): Promise<{ maxMs: number; count: number; failures: number }>;
}

export function watchHealth(port: number, everyMs = 20): HealthWatch {
  let running = true;
  let maxMs = 0;
  let count = 0;
  let failures = 0;
  const once = () =>
    new Promise<void>((resolve) => {
      const started = performance.now();
      const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
        res.resume();
        res.on('end', () => {
          maxMs = Math.max(maxMs, performance.now() - started);
          count++;
          if (res.statusCode !== 200) failures++;
          resolve();
        });
      });
      req.on('error', () => {
        failures++;
        resolve();
      });
    });
  const loop = (async () => {
    while (running) {
      await once();
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    answered: () => count,
    async stop() {
      running = false;
      await loop;
      return { maxMs, count, failures };
    },
  };
}
