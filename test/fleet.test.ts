import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireDocker, requireImages } from './support/env.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { freePort } from './support/free-port.js';
import { eventually } from './support/eventually.js';

const run = promisify(execFile);

/**
 * The fleet of docker-compose.fleet.yml, started as a user would: two API replicas behind
 * nginx on a radosgw bucket, Redis, and two workers in containers of their own that share no
 * volume with anything. 40 builds go to both replicas at once; one worker and one replica
 * are killed (SIGKILL) while they build. Every build must succeed, each artifact must come
 * from either replica with its sha256, and no build container may be left.
 */
const PROJECT = 'plugforge-fleet-test';
const BUILDS = 40;
const TOKEN = randomBytes(24).toString('hex');
let env: NodeJS.ProcessEnv;
let replicas: ApiClient[];
let lb: ApiClient;

function compose(args: string[], timeoutMs = 120_000) {
  return run('docker-compose', ['-f', path.join(REPO_ROOT, 'docker-compose.fleet.yml'), '-p', PROJECT, ...args], {
    cwd: REPO_ROOT,
    env,
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
}

async function containerOf(service: string): Promise<string> {
  return (await compose(['ps', '-q', service])).stdout.trim();
}

async function portOf(service: string): Promise<string> {
  const { stdout } = await compose(['port', service, '8080']);
  return stdout.trim().split(':').pop()!;
}

/** Build containers on the engine (any step), with the worker that made each. */
async function buildContainers(only: 'all' | 'running' = 'all'): Promise<{ id: string; build: string; worker: string }[]> {
  const which = only === 'all' ? ['-a'] : ['--filter', 'status=running'];
  const { stdout } = await run('docker', [
    'ps',
    ...which,
    '--filter',
    'label=org.plugforge.role=build',
    '--format',
    '{{.ID}} {{.Label "org.plugforge.build"}} {{.Label "org.plugforge.worker"}}',
  ]);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [id, build, worker] = l.split(' ');
      return { id: id!, build: build!, worker: worker! };
    });
}

/** examples/hello with a file of its own, so that no two of the 40 are the same build (an identical source is reused, not built). */
async function helloSource(n: number): Promise<Buffer> {
  const dir = path.join(REPO_ROOT, 'examples', 'hello');
  const files: Record<string, Buffer | string> = {};
  for (const name of readdirSync(dir)) if (statSync(path.join(dir, name)).isFile()) files[name] = readFileSync(path.join(dir, name));
  files['fleet_edit.go'] = `package main\n\n// fleet build ${n} ${TOKEN.slice(0, 8)}\n`;
  return tarOf(files, { gzip: true });
}

beforeAll(async () => {
  await requireImages(await requireDocker());
  await run('docker-compose', ['version', '--short']).catch(() => {
    throw new Error('This test needs docker-compose: apt-get install -y docker-compose (./scripts/test does this).');
  });
  env = {
    ...process.env,
    PLUGFORGE_WORKER_TOKEN: TOKEN,
    PLUGFORGE_WORKER_TOKENS: createHash('sha256').update(TOKEN).digest('hex'),
    PLUGFORGE_PORT: String(await freePort()),
    PLUGFORGE_LOG_LEVEL: 'warn',
    // All 40 at once, from one tenant.
    PLUGFORGE_TENANT_MAX_ACTIVE_BUILDS: String(BUILDS),
  };
  await compose(['down', '-v', '--remove-orphans']);
  await compose(['up', '-d', '--build'], 600_000);
  replicas = [new ApiClient(`http://127.0.0.1:${await portOf('api1')}`), new ApiClient(`http://127.0.0.1:${await portOf('api2')}`)];
  lb = new ApiClient(`http://127.0.0.1:${env.PLUGFORGE_PORT}`);
  // Both workers have reported what they can build.
  await lb.waitUntilReady((body) => body?.status === 'ready' && body.workers >= 2, 120_000);
}, 900_000);

afterAll(async () => {
  if (env)
    await compose(['down', '-v', '--remove-orphans']).catch((err) =>
      console.error(`fleet: docker-compose down failed: ${(err as Error).message}`),
    );
}, 300_000);

describe('the fleet (docker-compose.fleet.yml)', () => {
  it('the workers share no volume: the Docker socket is their one mount', async () => {
    for (const service of ['worker1', 'worker2']) {
      const { stdout } = await run('docker', [
        'inspect',
        '--format',
        '{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}',
        await containerOf(service),
      ]);
      expect(stdout.trim()).toBe('bind:/var/run/docker.sock');
    }
  });

  it(`builds ${BUILDS} builds sent to both replicas through a worker kill and a replica kill: all succeed, each artifact from either replica, no container left`, async () => {
    const targets = (n: number) => (n % 2 ? 'linux-arm64' : 'linux-amd64');
    const sources = await Promise.all(Array.from({ length: BUILDS }, (_, n) => helloSource(n)));
    const submitted = await Promise.all(sources.map((s, n) => replicas[n % 2]!.submit(s, `go=1.22&targets=${targets(n)}&name=fleet${n}`)));
    for (const res of submitted) expect(res.status, res.text).toBe(202);
    const ids = submitted.map((r) => r.body.id as string);

    // The moment: worker1 is compiling one of them.
    const worker1 = (await containerOf('worker1')).slice(0, 12);
    // A build container still running (compiling), of a build whose target is still running: one
    // that exited, or whose result is already recorded, is only waiting for its teardown.
    const compiling = async () => {
      for (const c of await buildContainers('running')) {
        if (!c.worker.startsWith(`${worker1}-`) || !ids.includes(c.build)) continue;
        const doc = (await lb.get(`/v1/builds/${c.build}`)).body;
        if (Object.values(doc?.targets ?? {}).some((t: any) => t?.status === 'running')) return c.worker;
      }
      return undefined;
    };
    const victim = await eventually(compiling, {
      timeoutMs: 120_000,
      intervalMs: 200,
      message: 'worker1 starting a build container',
    });
    expect(victim, 'worker1 never started a build container').toBeDefined();
    await run('docker', ['kill', await containerOf('worker1'), await containerOf('api1')]);
    const done = async () =>
      (await Promise.all(ids.map(async (id) => (await lb.get(`/v1/builds/${id}`)).body?.status))).filter((s) =>
        ['succeeded', 'failed', 'canceled'].includes(s),
      ).length;
    expect(await done()).toBeLessThan(BUILDS);

    // api1 comes back after a while (as its restart policy or an operator would bring it); worker1 stays dead.
    // A wait for time to pass, kept: the builds go on through api2 alone for these 10 s.
    await new Promise((r) => setTimeout(r, 10_000));
    await compose(['start', 'api1']);
    // Its loopback port is a new one after the restart.
    replicas[0] = new ApiClient(`http://127.0.0.1:${await portOf('api1')}`);
    const docs = [];
    for (const id of ids) docs.push(await lb.waitFor(id, undefined, 600_000));
    for (const doc of docs) expect(doc.status, JSON.stringify(doc)).toBe('succeeded');

    for (const [n, doc] of docs.entries()) {
      const target = targets(n);
      const sha256 = doc.targets[target].artifact.sha256 as string;
      for (const replica of replicas) {
        await replica.waitUntilReady((body) => body?.status === 'ready', 60_000);
        const got = await replica.bytes(`/v1/builds/${doc.id}/artifacts/${target}`);
        expect(got.status).toBe(200);
        expect(createHash('sha256').update(got.bytes).digest('hex')).toBe(sha256);
      }
    }
    // The dead worker's builds were taken over by the other.
    const logs = await Promise.all(ids.map(async (id) => (await lb.get(`/v1/builds/${id}/logs`)).text));
    expect(logs.some((l) => l.includes('taken over after a worker stopped'))).toBe(true);

    // No build container is left: the living worker's own are removed as each target ends,
    // the dead one's once its report has expired.
    const leftovers = async () => {
      const containers = (await buildContainers()).filter((c) => ids.includes(c.build)).map((c) => c.id);
      const volumes = (await run('docker', ['volume', 'ls', '-q', '--filter', `label=org.plugforge.worker=${victim}`])).stdout.trim();
      return [...containers, ...volumes.split('\n').filter(Boolean)];
    };
    await eventually(async () => (await leftovers()).length === 0, {
      timeoutMs: 120_000,
      intervalMs: 1_000,
      message: 'no build container or volume left',
    });
    expect(await leftovers()).toEqual([]);
  }, 1_200_000);
});
