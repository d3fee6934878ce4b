import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { REPO_ROOT, requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { slowPlugin } from './support/fixtures.js';
import { ApiClient } from './support/http.js';
import { tarOf } from './support/source.js';
import { eventually } from './support/eventually.js';

/**
 * The Docker engine stops and starts again in the middle of a build (dockerd restarted, as
 * an upgrade or a crash does): the build must end truthfully (taken again and built, not a
 * "compile error"), the service must stay up, and no container of the build may be left.
 * It restarts the local dockerd the way scripts/lib/setup.sh starts it, so it needs that
 * engine (root, /var/run/docker.pid), as ./scripts/test and CI have.
 */
const PID_FILE = '/var/run/docker.pid';
let redis: Redis;
let docker: Docker;
let service: RunningService;
/** The installation of this file's service, read from its build's containers. */
let instance = '';
let api: ApiClient;

async function dockerdPid(): Promise<number | undefined> {
  const pid = Number((await readFile(PID_FILE, 'utf8').catch(() => '')).trim());
  if (!pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function until(what: string, ok: () => Promise<boolean>, ms: number): Promise<void> {
  await eventually(ok, { timeoutMs: ms, intervalMs: 250, message: what });
}

/** Starts dockerd in the background, as setup.sh does, logging to the state directory. */
async function startDockerd(): Promise<void> {
  const stateDir = path.resolve(REPO_ROOT, process.env.PLUGFORGE_STATE_DIR ?? '.data');
  await mkdir(stateDir, { recursive: true });
  const log = openSync(path.join(stateDir, 'dockerd.log'), 'a');
  spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] }).unref();
  await until(
    'dockerd answering',
    () =>
      docker.ping().then(
        () => true,
        () => false,
      ),
    60_000,
  );
}

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  await requireImages(docker);
  if (process.getuid?.() !== 0 || !(await dockerdPid())) {
    throw new Error(
      `This test restarts the local dockerd (${PID_FILE}) and needs root: run ./scripts/test as root (CI does), with the engine it starts.`,
    );
  }
  service = await startService('serve', await testConfig({ PLUGFORGE_ATTEMPTS: '6' }));
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
});

afterAll(async () => {
  // Whatever happened above, leave an engine running for the files after this one.
  if (
    !(await docker.ping().then(
      () => true,
      () => false,
    ))
  )
    await startDockerd().catch(() => undefined);
  await service?.stop();
  redis?.disconnect();
});

describe('the Docker engine restarted mid-build', () => {
  it('takes the target again and builds it, the service stays up, and no container of the build is left', async () => {
    const res = await api.submit(await tarOf(slowPlugin(3000), { gzip: true }), 'targets=linux-amd64');
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    const containers = () => docker.listContainers({ all: true, filters: { label: [`org.plugforge.build=${id}`] } });
    await until(
      'the build container running',
      async () => (await containers()).some((c) => c.State === 'running' && c.Labels['org.plugforge.role'] === 'build'),
      120_000,
    );
    instance = (await containers())[0]!.Labels['org.plugforge.instance']!;

    const pid = (await dockerdPid())!;
    process.kill(pid, 'SIGTERM');
    await until('dockerd stopping', async () => !(await dockerdPid()), 60_000);
    await startDockerd();

    const doc = await api.waitFor(id, undefined, 600_000);
    const target = doc.targets['linux-amd64'];
    expect(doc.status, JSON.stringify(target)).toBe('succeeded');
    expect(target.attempt).toBeGreaterThanOrEqual(2);
    expect((await api.get('/healthz')).status).toBe(200);
    const logs = await api.get(`/v1/builds/${id}/logs?target=linux-amd64`);
    expect(logs.text).toMatch(/attempt \d of 6/);
    await until('no container of the build left', async () => (await containers()).length === 0, 60_000);
  }, 900_000);

  it('stopped afterwards, the service leaves nothing of its installation on the engine (a check cut off by the restart included)', async () => {
    expect(instance).toMatch(/^[0-9a-f]+$/);
    await service.stop();
    const label = { label: [`org.plugforge.instance=${instance}`] };
    expect((await docker.listContainers({ all: true, filters: label })).map((c) => `${c.Labels['org.plugforge.role']} ${c.State}`)).toEqual(
      [],
    );
    expect(((await docker.listVolumes({ filters: label })).Volumes ?? []).map((v) => v.Name)).toEqual([]);
  }, 120_000);
});
