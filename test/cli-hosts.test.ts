import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { requireCompiledCli, runCli } from './support/cli.js';
import { requireRedis, testConfig } from './support/env.js';
import { TenantClient } from './support/http.js';
import { GOTIFY_PLUGIN } from './support/source.js';
import { startFakeWorker } from './support/fixtures.js';

/**
 * `plugforge hosts add|list|rm` and `plugforge build --hosts` against a real API (Redis, a
 * scripted worker): the round trip a user makes, with the operator's token too.
 */
let redis: Redis;
let api: RunningService;
let worker: RunningService;
let env: Record<string, string> = {};
let dir = '';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const TOKEN = randomBytes(12).toString('hex');
const OPERATOR = randomBytes(12).toString('hex');
const HOST_TEXT = [
  'host: go1.22.12',
  '\tpath\texample.com/host',
  '\tmod\texample.com/host\t(devel)\t',
  '\tdep\texample.com/shared\tv1.0.0\th1:abc=',
  '\tbuild\tCGO_ENABLED=1',
  '\tbuild\tGOARCH=amd64',
  '\tbuild\tGOOS=linux',
  '',
].join('\n');

beforeAll(async () => {
  requireCompiledCli();
  redis = await requireRedis();
  const config = await testConfig({ PLUGFORGE_TOKENS: `ci:${sha256(TOKEN)}`, PLUGFORGE_OPERATOR_TOKENS: sha256(OPERATOR) });
  api = await startService('api', config);
  worker = await startFakeWorker(config);
  env = { PLUGFORGE_URL: `http://127.0.0.1:${api.port}`, PLUGFORGE_TOKEN: TOKEN };
  await new TenantClient(env.PLUGFORGE_URL!, TOKEN).waitUntilReady((b) => b.workers >= 1, 30_000);
  dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-cli-hosts-'));
  await writeFile(path.join(dir, 'buildinfo.txt'), HOST_TEXT);
  await writeFile(path.join(dir, 'go.mod'), 'module example.com/host\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n');
  await mkdir(path.join(dir, 'plugin'));
  for (const [name, content] of Object.entries(GOTIFY_PLUGIN)) await writeFile(path.join(dir, 'plugin', name), content);
});

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  redis?.disconnect();
});

describe('plugforge hosts', () => {
  it('adds a release from go version -m text and from a go.mod, lists them, and the operator adds one for everyone', async () => {
    const added = await runCli(
      ['hosts', 'add', '--name', 'gotify', '--version', 'v2.4.0', '--buildinfo', path.join(dir, 'buildinfo.txt')],
      { env },
    );
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('registered gotify@2.4.0 (tenant): go 1.22.12, from text');
    expect(added.stdout).toContain('plugforge build --hosts gotify@2.4.0');
    const goMod = await runCli(
      ['hosts', 'add', '--name', 'gotify', '--version', '2.3.0', '--gomod', path.join(dir, 'go.mod'), '--go', '1.22.12', '--json'],
      { env },
    );
    expect(goMod.code, goMod.stderr).toBe(0);
    expect(JSON.parse(goMod.stdout)).toMatchObject({ name: 'gotify', version: '2.3.0', from: 'goMod', go: '1.22.12', scope: 'tenant' });
    const op = await runCli(['hosts', 'add', '--name', 'flow', '--version', '1.0.0', '--binary', path.join(dir, 'buildinfo.txt')], {
      env: { ...env, PLUGFORGE_TOKEN: OPERATOR },
    });
    expect(op.code, op.stderr).toBe(0);
    expect(op.stdout).toContain('(installation)');

    const table = await runCli(['hosts', 'list'], { env });
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^HOST\s+SCOPE\s+GO\s+FROM\s+MODULES\s+TARGETS/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 4).join(' '))).toEqual([
      'flow@1.0.0 installation 1.22.12 text',
      'gotify@2.3.0 tenant 1.22.12 goMod',
      'gotify@2.4.0 tenant 1.22.12 text',
    ]);
    const json = await runCli(['hosts', 'list', '--name', 'gotify', '--json'], { env });
    expect(JSON.parse(json.stdout).map((h: any) => h.version)).toEqual(['2.3.0', '2.4.0']);
  });

  it("reports the server's refusals with their codes, and usage errors with exit 2", async () => {
    const again = await runCli(['hosts', 'add', '--name', 'gotify', '--version', '2.4.0', '--buildinfo', path.join(dir, 'buildinfo.txt')], {
      env,
    });
    expect(again.code).toBe(3);
    expect(again.stderr).toContain('[409 host_release_exists]');
    expect(again.stderr).toContain('plugforge hosts rm gotify@2.4.0');
    const both = await runCli(
      [
        'hosts',
        'add',
        '--name',
        'x',
        '--version',
        '1',
        '--buildinfo',
        path.join(dir, 'buildinfo.txt'),
        '--gomod',
        path.join(dir, 'go.mod'),
        '--go',
        '1.22',
      ],
      { env },
    );
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('describe the release one way');
    expect((await runCli(['hosts', 'add', '--name', 'x', '--version', '1', '--gomod', path.join(dir, 'go.mod')], { env })).code).toBe(2);
    expect((await runCli(['hosts', 'rm', 'gotify'], { env })).code).toBe(2);
    expect((await runCli(['hosts', 'frobnicate'], { env })).code).toBe(2);
  });

  it('builds against a registered release with --hosts, and refuses an unknown one naming how to register it', async () => {
    const built = await runCli(
      [
        'build',
        path.join(dir, 'plugin'),
        '--hosts',
        'gotify@2.4.0',
        '--targets',
        'linux-amd64',
        '--json',
        '--quiet',
        '--out',
        path.join(dir, 'out'),
      ],
      { env },
    );
    expect(built.stdout, built.stderr).not.toBe('');
    const doc = JSON.parse(built.stdout);
    expect(doc.hostMatch, built.stderr).toMatchObject({ from: 'binary', go: '1.22.12', release: 'gotify@2.4.0' });
    const unknown = await runCli(['build', path.join(dir, 'plugin'), '--hosts', 'gotify@9.9.9', '--targets', 'linux-amd64', '--quiet'], {
      env,
    });
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('[404 host_release_unknown]');
    expect(unknown.stderr).toContain('plugforge hosts add --name gotify --version 9.9.9');
  });

  it('removes a release with hosts rm, and a second rm is refused', async () => {
    const rm = await runCli(['hosts', 'rm', 'gotify@v2.4.0'], { env });
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe('removed gotify@2.4.0\n');
    const again = await runCli(['hosts', 'rm', 'gotify@2.4.0'], { env });
    expect(again.code).toBe(3);
    expect(again.stderr).toContain('[404 host_release_unknown]');
    const list = await runCli(['hosts', 'list', '--name', 'gotify', '--json'], { env });
    expect(JSON.parse(list.stdout).map((h: any) => h.version)).toEqual(['2.3.0']);
  });
});
