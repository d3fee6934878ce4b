import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { TARGET_IDS } from '../src/contract/targets.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { ApiClient } from './support/http.js';
import { writeModuleProxy } from './support/module-proxy.js';
import { tarOf } from './support/source.js';

/**
 * Plugins with real third-party dependencies, from a file:// module proxy made in the test
 * from Debian's packaged Go sources: github.com/go-kit/log (which requires
 * github.com/go-logfmt/logfmt). Debian builds go-kit/log 0.2.1 against logfmt 0.5.0, so the
 * proxy's go-kit/log go.mod says so (upstream's says v0.5.1, which Debian does not ship).
 */
const GOCODE = '/usr/share/gocode/src';
const KIT = `${GOCODE}/github.com/go-kit/log`;
const LOGFMT = `${GOCODE}/github.com/go-logfmt/logfmt`;

let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let go = '';
let proxyDir = '';
const cacheVolume = `plugforge-gomodcache-test-${randomBytes(4).toString('hex')}`;
let goSum = '';

const GO_MOD =
  'module example.com/logplug\n\ngo 1.22\n\nrequire github.com/go-kit/log v0.2.1\n\nrequire github.com/go-logfmt/logfmt v0.5.0 // indirect\n';
const PLUGIN_GO = `package main

import (
	"os"

	"github.com/go-kit/log"
)

// Log writes one logfmt line through go-kit/log (and so go-logfmt/logfmt).
func Log(msg string) error {
	return log.NewLogfmtLogger(os.Stdout).Log("msg", msg)
}

func main() {}
`;

/** go.sum as Go computes it for the proxy's modules (go mod tidy in a builder image). */
async function computeGoSum(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-gosum-'));
  await writeFile(path.join(dir, 'go.mod'), GO_MOD);
  await writeFile(path.join(dir, 'plugin.go'), PLUGIN_GO);
  const container = await docker.createContainer({
    Image: `plugforge/build:${go}-linux-amd64`,
    Cmd: ['go', 'mod', 'tidy'],
    WorkingDir: '/src',
    Env: ['GOPROXY=file:///proxy', 'GOSUMDB=off', 'GOFLAGS=-mod=mod', 'GOMODCACHE=/tmp/modcache'],
    NetworkDisabled: true,
    HostConfig: { NetworkMode: 'none', Binds: [`${dir}:/src`, `${proxyDir}:/proxy:ro`] },
  });
  try {
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    if (res.StatusCode !== 0) throw new Error(`go mod tidy failed: ${(await container.logs({ stdout: true, stderr: true })).toString()}`);
  } finally {
    await container.remove({ force: true });
  }
  return readFile(path.join(dir, 'go.sum'), 'utf8');
}

/** Network modes of every container the build made, seen as each was created. */
function watchNetworkModes(): { modes: Map<string, string>; stop: () => void } {
  const modes = new Map<string, string>();
  let stream: NodeJS.ReadableStream | undefined;
  void docker
    .getEvents({ filters: JSON.stringify({ type: ['container'], event: ['create'], label: ['org.plugforge.role=build'] }) })
    .then((s) => {
      stream = s;
      s.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const ev = JSON.parse(line) as { id: string; Actor: { Attributes: Record<string, string> } };
          const label = `${ev.Actor.Attributes['org.plugforge.build']}/${ev.Actor.Attributes['org.plugforge.target']}`;
          docker
            .getContainer(ev.id)
            .inspect()
            .then(
              (info) => modes.set(label, info.HostConfig.NetworkMode ?? '?'),
              () => undefined,
            );
        }
      });
    });
  return { modes, stop: () => (stream as unknown as { destroy?: () => void })?.destroy?.() };
}

beforeAll(async () => {
  if (!existsSync(`${KIT}/go.mod`) || !existsSync(`${LOGFMT}/go.mod`)) {
    throw new Error(
      'This test packages Debian Go sources into a module proxy: apt-get install golang-github-go-kit-log-dev golang-github-go-logfmt-logfmt-dev (./scripts/test does).',
    );
  }
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  proxyDir = await mkdtemp(path.join(os.tmpdir(), 'plugforge-goproxy-'));
  await chmod(proxyDir, 0o755);
  await writeModuleProxy(proxyDir, [
    { path: 'github.com/go-logfmt/logfmt', version: 'v0.5.0', srcDir: LOGFMT },
    {
      path: 'github.com/go-kit/log',
      version: 'v0.2.1',
      srcDir: KIT,
      goMod: 'module github.com/go-kit/log\n\ngo 1.17\n\nrequire github.com/go-logfmt/logfmt v0.5.0\n',
    },
  ]);
  goSum = await computeGoSum();
  service = await startService(
    'serve',
    await testConfig({ PLUGFORGE_GOPROXY: `file://${proxyDir}`, PLUGFORGE_GOSUMDB: 'off', PLUGFORGE_MODULE_CACHE_VOLUME: cacheVolume }),
  );
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
});

afterAll(async () => {
  await service?.stop();
  // The module cache of tenant "public" (no tokens configured): the prefix and the tenant.
  await docker
    ?.getVolume(`${cacheVolume}-public`)
    .remove()
    .catch(() => undefined);
  redis?.disconnect();
});

const plugin = (files: Record<string, string> = {}) =>
  tarOf({ 'go.mod': GO_MOD, 'go.sum': goSum, 'plugin.go': PLUGIN_GO, ...files }, { gzip: true });

describe('plugins with module dependencies', () => {
  it('downloads the modules once, then builds all four targets offline', async () => {
    const watch = watchNetworkModes();
    const res = await api.submit(await plugin(), 'go=1.22');
    expect(res.status).toBe(202);
    expect(res.body.source.requirements).toBe(true);
    expect(res.body.dependencies.status).toBe('queued');
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    watch.stop();
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    expect(doc.dependencies).toMatchObject({ status: 'succeeded', modules: 2, downloaded: 2 });
    for (const t of TARGET_IDS) expect(doc.targets[t].artifact.name).toBe(`logplug-${t}.so`);
    const logs = await api.get(`/v1/builds/${res.body.id}/logs?target=deps`);
    expect(logs.text).toContain('module github.com/go-kit/log v0.2.1: downloaded');
    expect(logs.text).toContain('module github.com/go-logfmt/logfmt v0.5.0: downloaded');
    // The dependency phase and every build ran with no network (the proxy is a mounted directory).
    const mine = [...watch.modes.entries()].filter(([k]) => k.startsWith(`${res.body.id}/`));
    expect(mine.map(([k]) => k.split('/')[1]).sort()).toEqual(['deps', ...TARGET_IDS].sort());
    for (const [, mode] of mine) expect(mode).toBe('none');
  });

  it('does not download again for a second build with the same requirements', async () => {
    const res = await api.submit(
      await plugin({ 'extra.go': 'package main\n\n// Extra makes this a different source.\nfunc Extra() int { return 2 }\n' }),
      'targets=linux-arm64',
    );
    const doc = await api.waitFor(res.body.id, undefined, 120_000);
    expect(doc.status).toBe('succeeded');
    expect(doc.dependencies).toMatchObject({ status: 'succeeded', modules: 2, downloaded: 0 });
    const logs = await api.get(`/v1/builds/${res.body.id}/logs?target=deps`);
    expect(logs.text).toContain('module github.com/go-kit/log v0.2.1: in the module cache');
    const metrics = await api.get('/metrics');
    expect(metrics.text).toMatch(/plugforge_modules_total\{source="cache"\} [1-9]/);
  });

  it('fails, naming the module, when go.sum has a wrong hash', async () => {
    const wrong = goSum.replace(
      /(github\.com\/go-logfmt\/logfmt v0\.5\.0 h1:)(\S)/,
      (_m, a: string, c: string) => `${a}${c === 'A' ? 'B' : 'A'}`,
    );
    expect(wrong).not.toBe(goSum);
    // A fresh module cache would not hold logfmt yet; the cached copy is checked against go.sum too.
    const res = await api.submit(await plugin({ 'go.sum': wrong }), 'targets=linux-amd64');
    expect(res.status).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 120_000);
    expect(doc.status).toBe('failed');
    expect(doc.dependencies.error.code).toBe('module_checksum_mismatch');
    expect(doc.dependencies.error.message).toContain('github.com/go-logfmt/logfmt@v0.5.0');
    expect(doc.targets['linux-amd64'].error.code).toBe('module_checksum_mismatch');
  });

  it('fails, naming the module, when a module is not on the proxy', async () => {
    const goMod = `${GO_MOD}\nrequire github.com/example/absent v1.2.3\n`;
    const res = await api.submit(await plugin({ 'go.mod': goMod }), 'targets=linux-amd64');
    const doc = await api.waitFor(res.body.id, undefined, 120_000);
    expect(doc.status).toBe('failed');
    expect(doc.dependencies.error.code).toBe('module_not_found');
    expect(doc.dependencies.error.message).toContain('github.com/example/absent@v1.2.3');
  });

  it('fails, naming the module, when go.sum does not list a module', async () => {
    const partial = goSum
      .split('\n')
      .filter((l) => !l.startsWith('github.com/go-logfmt/logfmt v0.5.0 h1:'))
      .join('\n');
    const res = await api.submit(await plugin({ 'go.sum': partial }), 'targets=linux-amd64');
    const doc = await api.waitFor(res.body.id, undefined, 120_000);
    expect(doc.dependencies.error.code).toBe('module_missing_go_sum');
    expect(doc.dependencies.error.message).toContain('github.com/go-logfmt/logfmt@v0.5.0');
  });

  it('refuses at once a go.mod that needs a newer Go than the toolchain, naming the ones that would do', async () => {
    const res = await api.submit(
      await tarOf({ 'go.mod': 'module example.com/newer\n\ngo 1.99\n', 'p.go': 'package main\n\nfunc main() {}\n' }, { gzip: true }),
      'go=1.22',
    );
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('toolchain_too_old');
    expect(res.body.error.message).toContain('go.mod requires go >= 1.99');
  });
});
