import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostBinaryBudget } from '../src/api/source-upload.js';
import { startService, type RunningService } from '../src/cli/serve-command.js';
import { PROBE_KEPT_MARK } from '../src/worker/plan.js';
import { requireDocker, requireImages, requireRedis, testConfig } from './support/env.js';
import { runHostOn } from './support/go-programs.js';
import { ApiClient } from './support/http.js';
import { writeModuleProxy } from './support/module-proxy.js';
import { tarOf } from './support/source.js';

/**
 * Host matching against real hosts: a file:// module proxy holding example.com/shared at
 * v1.0.0 and v1.1.0 and example.com/other v1.0.0 (which requires shared v1.1.0); a host
 * that links shared v1.0.0, described by its go.mod or by its binary, built here with the
 * Go 1.22 builder image. Plugins are built, aligned and loaded for real.
 */
let redis: Redis;
let docker: Docker;
let service: RunningService;
let api: ApiClient;
let go = '';
let work = '';
let proxyDir = '';
const cacheVolume = `plugforge-gomodcache-test-${randomBytes(4).toString('hex')}`;

const SHARED_V1_0 = 'package shared\n\n// Version names the release.\nfunc Version() string { return "v1.0.0" }\n';
const SHARED_V1_1 =
  'package shared\n\n// Version names the release.\nfunc Version() string { return "v1.1.0" }\n\n// New came with v1.1.0.\nfunc New() string { return "new" }\n';
const OTHER = 'package other\n\nimport "example.com/shared"\n\n// Name needs shared v1.1.0.\nfunc Name() string { return shared.New() }\n';

const HOST_GO_MOD = 'module example.com/host\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n';
const HOST_MAIN = `package main

import (
	"fmt"
	"os"
	"plugin"

	"example.com/shared"
)

func main() {
	fmt.Println("host with shared", shared.Version())
	if len(os.Args) > 1 {
		_, err := plugin.Open(os.Args[1])
		fmt.Println(err)
	}
}
`;

/** Plugin A: requires shared v1.1.0 but uses only what v1.0.0 has; aligned, it loads. */
const ALIGNABLE_GO_MOD = 'module example.com/alignable\n\ngo 1.22\n\nrequire example.com/shared v1.1.0\n';
const ALIGNABLE_GO =
  'package main\n\nimport "example.com/shared"\n\n// Hello says which shared it was built with.\nfunc Hello() string { return shared.Version() }\n\nfunc main() {}\n';
/** Plugin B: example.com/other forces shared v1.1.0 through minimal version selection. */
const FORCED_GO_MOD = 'module example.com/forced\n\ngo 1.22\n\nrequire (\n\texample.com/other v1.0.0\n\texample.com/shared v1.1.0\n)\n';
const FORCED_GO =
  'package main\n\nimport (\n\t"example.com/other"\n\t"example.com/shared"\n)\n\n// Hello uses both.\nfunc Hello() string { return shared.Version() + other.Name() }\n\nfunc main() {}\n';

let alignableSum = '';
let forcedSum = '';
let hostBinary: Buffer;
let hostVersionM = '';
let hostDir = '';
/** A plugin that vendors shared v1.0.0, the host's version: only where it reads it from differs. */
let vendoredFiles: Record<string, string> = {};
const VENDORED_GO_MOD = 'module example.com/vendored\n\ngo 1.22\n\nrequire example.com/shared v1.0.0\n';

/** Runs a command in the amd64 builder image with dir at /src and the proxy mounted; returns stdout. */
async function goIn(dir: string, cmd: string[]): Promise<string> {
  const container = await docker.createContainer({
    Image: `plugforge/build:${go}-linux-amd64`,
    Cmd: cmd,
    WorkingDir: '/src',
    Env: ['GOPROXY=file:///proxy', 'GOSUMDB=off', 'GOFLAGS=-mod=mod', 'GOMODCACHE=/go/pkg/mod', 'GOCACHE=/tmp/gocache', 'CGO_ENABLED=1'],
    NetworkDisabled: true,
    HostConfig: { NetworkMode: 'none', Binds: [`${dir}:/src`, `${proxyDir}:/proxy:ro`] },
  });
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    container.modem.demuxStream(stream, { write: (c: Buffer) => out.push(c) } as never, { write: (c: Buffer) => err.push(c) } as never);
    // All the output is in once the attached stream ends (the container's exit closes it).
    const ended = new Promise((resolve) => stream.once('end', resolve).once('close', resolve).once('error', resolve));
    await container.start();
    const res = (await container.wait()) as { StatusCode: number };
    await ended;
    if (res.StatusCode !== 0) throw new Error(`${cmd.join(' ')} failed: ${Buffer.concat(err).toString()}${Buffer.concat(out).toString()}`);
    return Buffer.concat(out).toString();
  } finally {
    await container.remove({ force: true });
  }
}

/** Runs the real host program (built above) on a plugin, the way it runs at start-up: what plugin.Open said. */
function runHost(plugin: Buffer): Promise<string> {
  return runHostOn(docker, `plugforge/build:${go}-linux-amd64`, work, hostBinary, plugin);
}

/** A module directory for the proxy. */
async function moduleDir(name: string, goMod: string, file: string, source: string): Promise<string> {
  const dir = path.join(work, 'modules', name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'go.mod'), goMod);
  await writeFile(path.join(dir, file), source);
  return dir;
}

/** go.sum as `go mod tidy` writes it for a plugin (only the versions it requires itself). */
async function tidySum(name: string, goMod: string, source: string): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  await writeFile(path.join(dir, 'go.mod'), goMod);
  await writeFile(path.join(dir, 'plugin.go'), source);
  await goIn(dir, ['go', 'mod', 'tidy']);
  return readFile(path.join(dir, 'go.sum'), 'utf8');
}

beforeAll(async () => {
  redis = await requireRedis();
  docker = await requireDocker();
  go = await requireImages(docker);
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-host-'));
  await chmod(work, 0o755);
  proxyDir = path.join(work, 'proxy');
  await mkdir(proxyDir);
  const sharedGoMod = 'module example.com/shared\n\ngo 1.21\n';
  await writeModuleProxy(proxyDir, [
    { path: 'example.com/shared', version: 'v1.0.0', srcDir: await moduleDir('shared-1.0', sharedGoMod, 'shared.go', SHARED_V1_0) },
    { path: 'example.com/shared', version: 'v1.1.0', srcDir: await moduleDir('shared-1.1', sharedGoMod, 'shared.go', SHARED_V1_1) },
    {
      path: 'example.com/other',
      version: 'v1.0.0',
      srcDir: await moduleDir('other', 'module example.com/other\n\ngo 1.21\n\nrequire example.com/shared v1.1.0\n', 'other.go', OTHER),
    },
  ]);
  alignableSum = await tidySum('alignable', ALIGNABLE_GO_MOD, ALIGNABLE_GO);
  forcedSum = await tidySum('forced', FORCED_GO_MOD, FORCED_GO);
  expect(alignableSum).not.toContain('example.com/shared v1.0.0');

  // The host: Go 1.22 from the builder image, -trimpath off, linking shared v1.0.0.
  hostDir = path.join(work, 'host');
  await mkdir(hostDir);
  await chmod(hostDir, 0o777);
  await writeFile(path.join(hostDir, 'go.mod'), HOST_GO_MOD);
  await writeFile(path.join(hostDir, 'main.go'), HOST_MAIN);
  await goIn(hostDir, ['go', 'build', '-o', 'host', '.']);
  hostBinary = await readFile(path.join(hostDir, 'host'));
  hostVersionM = await goIn(hostDir, ['go', 'version', '-m', 'host']);

  const vendoredSum = await tidySum('vendored', VENDORED_GO_MOD, ALIGNABLE_GO);
  await goIn(path.join(work, 'vendored'), ['go', 'mod', 'vendor']);
  vendoredFiles = {
    'go.mod': VENDORED_GO_MOD,
    'go.sum': vendoredSum,
    'plugin.go': ALIGNABLE_GO,
    'vendor/modules.txt': await readFile(path.join(work, 'vendored', 'vendor', 'modules.txt'), 'utf8'),
    'vendor/example.com/shared/shared.go': await readFile(
      path.join(work, 'vendored', 'vendor', 'example.com', 'shared', 'shared.go'),
      'utf8',
    ),
  };

  service = await startService(
    'serve',
    await testConfig({ PLUGFORGE_GOPROXY: `file://${proxyDir}`, PLUGFORGE_GOSUMDB: 'off', PLUGFORGE_MODULE_CACHE_VOLUME: cacheVolume }),
  );
  api = new ApiClient(`http://127.0.0.1:${service.port}`);
}, 300_000);

afterAll(async () => {
  await service?.stop();
  // The module cache of tenant "public" (no tokens configured): the prefix and the tenant.
  await docker
    ?.getVolume(`${cacheVolume}-public`)
    .remove()
    .catch(() => undefined);
  redis?.disconnect();
});

/** POST /v1/builds as multipart: the source part, option fields, and an optional hostBinary part. */
async function submitForm(
  files: Record<string, string>,
  fields: Record<string, string>,
  binary?: Buffer | string,
): Promise<{ status: number; body: any }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('source', new Blob([await tarOf(files, { gzip: true })]), 'plugin.tar.gz');
  if (binary !== undefined) form.set('hostBinary', new Blob([binary]), 'host');
  const res = await fetch(`${api.base}/v1/builds`, { method: 'POST', body: form });
  return { status: res.status, body: await res.json() };
}

const alignable = () => ({ 'go.mod': ALIGNABLE_GO_MOD, 'go.sum': alignableSum, 'plugin.go': ALIGNABLE_GO });

describe('host matching by the host go.mod (hostGoMod)', () => {
  it("aligns a plugin requiring shared v1.1.0 to the host's v1.0.0, and it verifies", async () => {
    const res = await submitForm(alignable(), { targets: 'linux-amd64,linux-arm64', hostGoMod: HOST_GO_MOD });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.hostMatch).toMatchObject({
      from: 'goMod',
      trimpath: false,
      modules: 1,
      aligned: [{ path: 'example.com/shared', from: 'v1.1.0', to: 'v1.0.0' }],
    });
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    for (const t of ['linux-amd64', 'linux-arm64']) expect(doc.targets[t].verify.status).toBe('passed');
    const deps = (await api.get(`/v1/builds/${res.body.id}/logs?target=deps`)).text;
    expect(deps).toContain('host: aligned example.com/shared v1.1.0 -> v1.0.0');
    expect(deps).toMatch(/go\.sum: added example\.com\/shared v1\.0\.0 h1:/);
    expect(deps).toContain('module example.com/shared v1.0.0');
    const amd64 = (await api.get(`/v1/builds/${res.body.id}/logs?target=linux-amd64`)).text;
    expect(amd64).toContain('probe: imports example.com/shared (shared with the host)');
    const artifact = await api.bytes(`/v1/builds/${res.body.id}/artifacts/linux-amd64`);
    expect(await runHost(artifact.bytes)).toMatch(/host with shared v1\.0\.0\s+<nil>/);
  });

  it('a one-line edit links no new probe: go finds the probe the build above kept up to date, and the host still loads the plugin', async () => {
    const edited = {
      ...alignable(),
      'plugin.go': ALIGNABLE_GO.replace('func main() {}', 'func main() {}\n\n// Edited once.\nvar Edited = 1'),
    };
    const res = await submitForm(edited, { targets: 'linux-amd64', hostGoMod: HOST_GO_MOD });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    expect(doc.reusedFrom).toBeUndefined();
    expect(doc.targets['linux-amd64'].verify.status).toBe('passed');
    const log = (await api.get(`/v1/builds/${res.body.id}/logs?target=linux-amd64`)).text;
    expect(log).toContain('probe: imports example.com/shared (shared with the host)');
    expect(log).toContain(PROBE_KEPT_MARK);
    const artifact = await api.bytes(`/v1/builds/${res.body.id}/artifacts/linux-amd64`);
    expect(await runHost(artifact.bytes)).toMatch(/host with shared v1\.0\.0\s+<nil>/);
  });

  it('refuses a plugin whose other dependency forces shared v1.1.0, naming the module and both versions, before any artifact', async () => {
    const res = await submitForm(
      { 'go.mod': FORCED_GO_MOD, 'go.sum': forcedSum, 'plugin.go': FORCED_GO },
      { targets: 'linux-amd64,linux-386', hostGoMod: HOST_GO_MOD },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status).toBe('failed');
    expect(doc.dependencies.error.code).toBe('host_module_mismatch');
    expect(doc.dependencies.error.message).toContain(
      "example.com/shared: the host links v1.0.0, the plugin's build would use v1.1.0 (required by example.com/other@v1.0.0)",
    );
    for (const t of ['linux-amd64', 'linux-386']) {
      expect(doc.targets[t]).toMatchObject({ status: 'failed', error: { code: 'host_module_mismatch' } });
      expect(doc.targets[t].artifact).toBeUndefined();
    }
    expect((await api.bytes(`/v1/builds/${res.body.id}/artifacts/linux-amd64`)).status).not.toBe(200);
  });
});

describe('host matching by the host binary (hostBinary)', () => {
  it('derives Go 1.22.x and trimpath off from the binary, and the plugin loads in a probe built that way', async () => {
    const res = await submitForm(alignable(), { targets: 'linux-amd64' }, hostBinary);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.go).toBe(go);
    expect(res.body.go).toMatch(/^1\.22\.\d+$/);
    expect(res.body.hostMatch).toMatchObject({
      from: 'binary',
      go,
      trimpath: false,
      tags: [],
      aligned: [{ path: 'example.com/shared', to: 'v1.0.0' }],
    });
    expect(res.body.build).toEqual({ trimpath: false, tags: [] });
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    expect(doc.targets['linux-amd64'].verify.status).toBe('passed');
    const log = (await api.get(`/v1/builds/${res.body.id}/logs?target=linux-amd64`)).text;
    expect(log).toContain('probe: imports example.com/shared (shared with the host)');
    expect(log).toContain('no -trimpath, no tags');
    // And the real host loads it.
    const artifact = await api.bytes(`/v1/builds/${res.body.id}/artifacts/linux-amd64`);
    expect(await runHost(artifact.bytes)).toMatch(/host with shared v1\.0\.0\s+<nil>/);
  });

  it("shows the same plugin built with -trimpath failing verification with Go's own message, its artifact still offered", async () => {
    const res = await submitForm(alignable(), { targets: 'linux-amd64', trimpath: 'true', name: 'trimmed' }, hostBinary);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.build.trimpath).toBe(true);
    expect(res.body.hostMatch.trimpath).toBe(false);
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status).toBe('failed');
    const target = doc.targets['linux-amd64'];
    // The host binary's fingerprints decide it before the probe runs: dozens of packages differ.
    expect(target.error.code).toBe('package_mismatch');
    expect(target.verify).toMatchObject({ status: 'failed', method: 'fingerprints' });
    expect(target.verify.fingerprints.differing.length).toBeGreaterThan(10);
    expect(target.verify.message).toMatch(/plugin was built with a different version of package \S+/);
    const download = await api.bytes(`/v1/builds/${res.body.id}/artifacts/linux-amd64`);
    expect(download.status).toBe(200);
    expect(download.headers.get('x-plugforge-verify')).toBe('failed');
    // The real host refuses it with the very message the probe reported.
    const refusal = /plugin was built with a different version of package \S+/.exec(target.verify.message)![0];
    expect(await runHost(download.bytes)).toContain(refusal);
  });

  it('with verify=warn, the build succeeds and says verification failed', async () => {
    const res = await submitForm(alignable(), { targets: 'linux-amd64', trimpath: 'true', name: 'warned', verify: 'warn' }, hostBinary);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status).toBe('succeeded');
    expect(doc.targets['linux-amd64'].verify).toMatchObject({
      status: 'failed',
      message: expect.stringContaining('plugin was built with a different version of package'),
    });
    expect(doc.targets['linux-amd64'].error).toBeUndefined();
  });

  it('builds a vendored plugin from the module cache, as the host read its modules, and the host loads it', async () => {
    const res = await submitForm(vendoredFiles, { targets: 'linux-amd64', name: 'vendored' }, hostBinary);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.source.vendored).toBe(true);
    expect(res.body.hostMatch.notes.join('\n')).toContain('vendor/ is set aside');
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
    expect(doc.dependencies.status).toBe('succeeded');
    const log = (await api.get(`/v1/builds/${res.body.id}/logs?target=linux-amd64`)).text;
    expect(log).not.toContain('-mod=vendor');
    const artifact = await api.bytes(`/v1/builds/${res.body.id}/artifacts/linux-amd64`);
    expect(await runHost(artifact.bytes)).toMatch(/<nil>/);
    // Built from vendor/ instead, the same code at the same version is refused by the host.
    const fromVendor = path.join(work, 'vendored');
    await goIn(fromVendor, ['go', 'build', '-mod=vendor', '-buildmode=plugin', '-o', 'from-vendor.so', '.']);
    expect(await runHost(await readFile(path.join(fromVendor, 'from-vendor.so')))).toContain(
      'plugin was built with a different version of package example.com/shared',
    );
  });

  it('reads the same from the text of go version -m', async () => {
    expect(hostVersionM).toContain('dep\texample.com/shared\tv1.0.0');
    const res = await submitForm(alignable(), { targets: 'linux-amd64', name: 'fromtext' }, hostVersionM);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.hostMatch).toMatchObject({ from: 'binary', go, trimpath: false, modules: 1 });
    const doc = await api.waitFor(res.body.id, undefined, 300_000);
    expect(doc.status, JSON.stringify(doc)).toBe('succeeded');
  });

  it('refuses a Go option that contradicts the binary, and a host described twice', async () => {
    let res = await submitForm(alignable(), { targets: 'linux-amd64', go: '1.24' }, hostBinary);
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('host_go_conflict');
    res = await submitForm(alignable(), { targets: 'linux-amd64', hostGoMod: HOST_GO_MOD }, hostBinary);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('host_described_twice');
    res = await submitForm(alignable(), { targets: 'linux-amd64' }, 'not build info at all');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('host_buildinfo_invalid');
  });

  it('answers 503 when host binaries in memory would pass the budget, and gives the budget back', async () => {
    const max = hostBinaryBudget.max;
    hostBinaryBudget.max = hostBinary.length - 1;
    try {
      const res = await submitForm(alignable(), { targets: 'linux-amd64' }, hostBinary);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('host_binary_busy');
      expect(res.body.error.message).toContain('go version -m');
    } finally {
      hostBinaryBudget.max = max;
    }
    expect(hostBinaryBudget.inUse).toBe(0);
  });
});
